"""Decoding a clip in a child process that is killed when it overruns.

:func:`~service.ingest.clip.decode_clip` checks its wall-time limit between FFmpeg calls, which
bounds every input that FFmpeg handles correctly. A file that makes one FFmpeg call hang, or crash
the process, needs a boundary the caller can enforce: here the decode runs in a child forked from a
``forkserver`` (fork-safe in a threaded gateway or worker; ``service.ingest.clip`` and PyAV are
preloaded there, so each child starts in milliseconds) and is killed at the deadline.
"""

from __future__ import annotations

import functools
import multiprocessing
import multiprocessing.connection
import os
from multiprocessing.context import BaseContext
from pathlib import Path

from service.ingest.clip import DecodedClip, decode_clip
from service.ingest.errors import CorruptVideoError, DecodeTimeoutError
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
) -> DecodedClip:
    """:func:`decode_clip` in a child process, killed ``grace_s`` after the wall-time limit.

    Args:
        source: Bytes or a local file path (a file object cannot cross the process boundary).
        sampling: As for :func:`decode_clip`.
        limits: As for :func:`decode_clip`; ``max_decode_seconds`` also sets the kill deadline.
        short_side: As for :func:`decode_clip`.
        allow_seek: As for :func:`decode_clip`.
        grace_s: Time allowed on top of the limit for starting the child and returning frames.

    Returns:
        The decoded clip.

    Raises:
        DecodeTimeoutError: The child overran and was killed.
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
        args=(sender, source, sampling, limits, short_side, allow_seek),
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
) -> None:
    outcome: DecodedClip | BaseException
    try:
        clip_source: bytes | Path = source if isinstance(source, bytes) else Path(source)
        outcome = decode_clip(
            clip_source, sampling, limits, short_side=short_side, allow_seek=allow_seek
        )
    except Exception as exc:  # typed errors, and the caller's mistakes (a missing path) as is
        outcome = exc
    try:
        sender.send(outcome)
    except Exception as exc:  # an exception that does not pickle
        sender.send(RuntimeError(f"decode process failed: {outcome!r} ({exc!r})"))
    sender.close()
