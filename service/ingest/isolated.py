"""Decoding a clip in a child process that is killed when it overruns.

:func:`~service.ingest.clip.decode_clip` checks its wall-time limit between FFmpeg calls, which
bounds every input that FFmpeg handles correctly. A file that makes one FFmpeg call hang, or crash
the process, needs a boundary the caller can enforce: here the decode runs in a child forked from a
``forkserver`` (fork-safe in a threaded gateway or worker; ``service.ingest.clip`` and PyAV are
preloaded there, so each child starts in milliseconds) and is killed at the deadline. The child
can also be held to a CPU-time and a memory budget (``setrlimit``), so a clip that is cheap to
send but costly to decode costs at most that much: the worker decodes every upload this way.
"""

from __future__ import annotations

import errno
import functools
import math
import multiprocessing
import multiprocessing.connection
import os
import re
import resource
import signal
from multiprocessing.context import BaseContext
from pathlib import Path

from service.ingest.clip import DecodedClip, decode_clip
from service.ingest.errors import CorruptVideoError, DecodeTimeoutError, DecodeTooCostlyError
from service.ingest.sampling import Sampling
from service.ingest.settings import ClipLimits

IsolatedSource = bytes | str | os.PathLike[str]


@functools.cache
def _context() -> BaseContext:
    context = multiprocessing.get_context("forkserver")
    # The preload list is read when the fork server starts, which happens on first use.
    context.set_forkserver_preload(["service.ingest.clip"])
    return context


def decode_clip_isolated(
    source: IsolatedSource,
    sampling: Sampling | None = None,
    limits: ClipLimits | None = None,
    *,
    short_side: int | None = None,
    allow_seek: bool = True,
    grace_s: float = 2.0,
    cpu_seconds: float | None = None,
    memory_bytes: int | None = None,
) -> DecodedClip:
    """:func:`decode_clip` in a child process, killed ``grace_s`` after the wall-time limit.

    Args:
        source: Bytes or a local file path (a file object cannot cross the process boundary).
        sampling: As for :func:`decode_clip`.
        limits: As for :func:`decode_clip`; ``max_decode_seconds`` also sets the kill deadline.
        short_side: As for :func:`decode_clip`.
        allow_seek: As for :func:`decode_clip`.
        grace_s: Time allowed on top of the limit for starting the child and returning frames.
        cpu_seconds: CPU time the child may use (``RLIMIT_CPU``; rounded up to whole seconds);
            ``None``: no bound but the wall-time one.
        memory_bytes: Address space the decode may add to the child's own at start
            (``RLIMIT_AS``); ``None``: no bound.

    Returns:
        The decoded clip.

    Raises:
        DecodeTimeoutError: The child overran and was killed.
        DecodeTooCostlyError: The child ran out of its CPU time or memory.
        CorruptVideoError: The child died without an answer (a decoder crash).
        IngestError: Any typed error the child raised; other exceptions (a missing path) are
            re-raised as they were.
    """
    limits = limits or ClipLimits()
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    context = _context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(  # type: ignore[attr-defined]
        target=_child,
        args=(sender, source, sampling, limits, short_side, allow_seek, cpu_seconds, memory_bytes),
        name="vidrec-decode",
        daemon=True,
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(limits.max_decode_seconds + grace_s):
            raise DecodeTimeoutError(
                f"decoding took longer than {limits.max_decode_seconds:g} s and was stopped"
            )
        try:
            outcome = receiver.recv()
        except EOFError:
            outcome = None
    finally:
        if process.is_alive():
            process.kill()
        process.join(timeout=10)
        receiver.close()
    cpu_stopped = process.exitcode in (-signal.SIGXCPU, -signal.SIGKILL)
    if outcome is None and cpu_seconds is not None and cpu_stopped:
        # SIGXCPU at the soft CPU limit, SIGKILL at the hard one (our own kill raised above).
        raise DecodeTooCostlyError(
            f"decoding used more than its {cpu_seconds:g} s of CPU time and was stopped"
        )
    if outcome is None:
        raise CorruptVideoError(
            f"the decoder stopped on this file without an answer (exit code {process.exitcode})"
        )
    if isinstance(outcome, BaseException):
        raise outcome
    if not isinstance(outcome, DecodedClip):
        raise RuntimeError(f"unexpected answer from the decode process: {type(outcome)}")
    return outcome


def _child(
    sender: multiprocessing.connection.Connection,
    source: bytes | str,
    sampling: Sampling | None,
    limits: ClipLimits,
    short_side: int | None,
    allow_seek: bool,
    cpu_seconds: float | None,
    memory_bytes: int | None,
) -> None:
    outcome: DecodedClip | BaseException
    try:
        _limit(cpu_seconds, memory_bytes)
        clip_source: bytes | Path = source if isinstance(source, bytes) else Path(source)
        outcome = decode_clip(
            clip_source, sampling, limits, short_side=short_side, allow_seek=allow_seek
        )
    except Exception as exc:  # typed errors, and the caller's mistakes (a missing path) as is
        outcome = exc
        if memory_bytes is not None and _out_of_memory(exc):
            outcome = DecodeTooCostlyError(
                f"decoding needed more than its {memory_bytes / 2**20:.0f} MiB of memory"
            )
    try:
        sender.send(outcome)
    except Exception as exc:  # an exception that does not pickle
        sender.send(RuntimeError(f"decode process failed: {outcome!r} ({exc!r})"))
    sender.close()


def _limit(cpu_seconds: float | None, memory_bytes: int | None) -> None:
    """Applies the budgets to this (child) process."""
    if cpu_seconds is not None:
        soft = max(1, math.ceil(cpu_seconds))
        # SIGXCPU at the soft limit; SIGKILL a second later, should it be caught.
        resource.setrlimit(resource.RLIMIT_CPU, (soft, soft + 1))
    if memory_bytes is not None:
        # The child starts with the fork server's address space (PyAV, NumPy: a few hundred
        # MiB, mostly untouched): the budget is what the decode may add to it.
        limit = _address_space() + memory_bytes
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _address_space() -> int:
    """This process's virtual memory size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as status:
            match = re.search(r"^VmSize:\s+(\d+) kB", status.read(), re.MULTILINE)
    except OSError:
        return 0
    return int(match.group(1)) * 1024 if match else 0


def _out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps: the ingest errors wrap FFmpeg's) is an allocation
    failure."""
    for error in (exc, exc.__cause__):
        if isinstance(error, MemoryError) or getattr(error, "errno", None) == errno.ENOMEM:
            return True
    return False
