"""``vidrec serve``: the whole service on one machine: Redis, workers and the gateway.

With no ``VIDREC_REDIS_URL`` it starts an embedded Redis (``service.embedded.EmbeddedRedis``, a
real redis-server on a Unix socket); with one it uses that server. Then it starts ``--workers``
worker subprocesses (``python -m service.worker``; by default one per visible GPU, each pinned to
its ``cuda:N``, or one without GPUs: ``service.devices``) and runs the gateway with uvicorn in
this process. A worker that dies is restarted; one that keeps dying before it is ready stops the
service with its exit status.

Stopping (Ctrl-C or SIGTERM) goes in dependency order: the gateway stops taking requests, the
workers get SIGTERM and drain their in-flight work, and Redis goes last. Workers and the Redis
server run in process groups of their own, so a Ctrl-C in the terminal reaches only this process
and the order holds. The embedded Redis is kept by a small helper process that stops it when this
process goes, even by SIGKILL (its stdin closes); each worker watches a pipe from this process the
same way and drains when it closes, so a killed ``vidrec serve`` leaves nothing running.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any

from service.cli.gateway_cmd import (
    GatewayServer,
    add_listen_options,
    announce,
    base_url,
    bind,
    load_settings,
    make_server,
)
from service.devices import WorkerPlan, describe_plan, plan_workers, visible_gpus
from service.logs import configure_logging, status_line
from service.settings import Settings
from service.threads import available_cores

# `python -m service.worker` behind a watch on stdin (see run_supervised_worker).
WORKER_COMMAND = (
    sys.executable,
    "-c",
    "import sys; from service.cli.serve_cmd import run_supervised_worker; "
    "sys.exit(run_supervised_worker())",
)
# A worker whose serve process is gone gets this long to drain before it exits anyway.
ORPHAN_GRACE_S = 30.0
# A worker's exit status for settings or models it cannot use: restarting would not help.
CONFIG_ERROR_STATUS = 2
# A worker that exits this many times in a row before it was ever ready stops the service.
MAX_START_FAILURES = 3
# Restart delays after a crash of a worker that had been ready: 1, 2, 4 ... seconds, at most this.
MAX_RESTART_DELAY_S = 30.0
# A worker that ran this long counts as healthy again: its restart delay starts over.
HEALTHY_AFTER_S = 60.0
POLL_S = 0.25
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
REDIS_START_TIMEOUT_S = 30.0
KEEPER_CODE = (
    "import sys; from service.cli.serve_cmd import keep_embedded_redis; "
    "sys.exit(keep_embedded_redis())"
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the service: (embedded) Redis, workers and the gateway",
        description=(
            "Run the whole service on this machine. Without VIDREC_REDIS_URL an embedded Redis is "
            "started; then --workers worker processes and the gateway. Ctrl-C or SIGTERM stops "
            "the gateway, drains the workers, then stops Redis. Other settings come from "
            "VIDREC_* variables (see docs/OPERATIONS.md)."
        ),
    )
    add_listen_options(parser)
    parser.add_argument(
        "--workers",
        type=int,
        help=(
            "worker processes to run (default: VIDREC_WORKERS, else one per visible GPU, pinned "
            "to cuda:0, cuda:1 ..., or 1 without GPUs)"
        ),
    )
    parser.add_argument(
        "--models-dir",
        type=Path,
        help="directory of model bundles (default: VIDREC_MODELS_DIR or the shipped demo ones)",
    )
    parser.add_argument(
        "--drain-timeout",
        type=float,
        default=30.0,
        help="seconds the workers get to drain on stop before they are killed (default: 30)",
    )
    parser.set_defaults(handler=run)


def say(message: str, level: int = logging.INFO) -> None:
    """A status line on stderr (stdout carries only the listening line), whatever the log level:
    text, or a JSON record of ``service.serve`` with ``VIDREC_LOG_FORMAT=json``."""
    line = status_line("service.serve", f"vidrec serve: {message}", level)
    print(line, file=sys.stderr, flush=True)


def bundle_dir(models_dir: Path | None) -> Path:
    """Where the workers will look for bundles, found without importing ``model_core`` (and
    torch) into the gateway's process: the default is ``model_core/zoo/bundles``."""
    if models_dir is not None:
        return models_dir
    spec = importlib.util.find_spec("model_core")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("the model_core package is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "zoo" / "bundles"


def check_bundles(models_dir: Path | None) -> Path:
    """The bundle directory, if it holds at least one bundle.

    Raises:
        ValueError: no such directory, or no ``*.safetensors`` in it, with what to do about it.
    """
    root = bundle_dir(models_dir)
    shipped = models_dir is None
    if not root.is_dir():
        raise ValueError(f"no model bundle directory at {root}")
    if not any(root.glob("*.safetensors")):
        what = "the shipped demo bundles are not there yet" if shipped else "it is empty"
        raise ValueError(
            f"no model bundles (*.safetensors) in {root}: {what}. Point VIDREC_MODELS_DIR (or "
            "--models-dir) at a directory of bundles (`vidrec train ... --output DIR/NAME."
            "safetensors` makes one)"
        )
    return root


# The embedded Redis, kept by a helper process.


def keep_embedded_redis() -> int:
    """Body of the keeper process: starts the embedded Redis, prints its URL, and stops it when
    stdin closes (the parent stopped it, or died) or on SIGTERM."""
    from service.embedded import EmbeddedRedis, EmbeddedRedisError

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    server = EmbeddedRedis()
    try:
        server.start()
    except EmbeddedRedisError as exc:
        # on stdout, for the parent to say in its log format
        print(f"error: {exc}".replace("\n", " "), flush=True)
        return 1
    try:
        print(f"{server.url} {server.pid}", flush=True)
        while sys.stdin.buffer.read(4096):
            pass
    finally:
        server.stop()
    return 0


class RedisKeeper:
    """The embedded Redis of ``vidrec serve``, run by a helper process in its own session."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, server_pid: int) -> None:
        self.process = process
        self.url = url
        self.server_pid = server_pid

    @classmethod
    def start(cls, timeout_s: float = REDIS_START_TIMEOUT_S) -> RedisKeeper:
        """Starts the keeper and waits for the server's URL.

        Raises:
            RuntimeError: the server did not start (with the keeper's error).
        """
        process = subprocess.Popen(
            [sys.executable, "-c", KEEPER_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )
        assert process.stdout is not None
        line = _read_line(process.stdout, timeout_s)
        parts = line.split()
        if len(parts) != 2 or not parts[0].startswith("unix://"):
            _stop_process(process, 5.0)
            why = line.removeprefix("error: ") if line else f"no answer in {timeout_s:g} s"
            raise RuntimeError(f"the embedded Redis did not start: {why}")
        return cls(process, parts[0], int(parts[1]))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Stops the server (the keeper's stdin closes) and waits for the keeper."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _stop_process(self.process, 5.0)
        if self.process.stdout is not None:
            self.process.stdout.close()


def _read_line(stream: IO[bytes], timeout_s: float) -> str:
    """One line from a pipe, or '' when none comes within the time."""
    result: list[bytes] = []
    reader = threading.Thread(target=lambda: result.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout_s)
    return result[0].decode(errors="replace").strip() if result else ""


def _stop_process(process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout_s``; waits either way."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# The workers.


@dataclass
class _Slot:
    """One worker place: the current process and its restart bookkeeping."""

    index: int
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    ready: bool = False
    start_failures: int = 0
    crashes: int = 0
    restart_at: float | None = None
    generation: int = 0


@dataclass
class WorkerPool:
    """``count`` worker subprocesses, kept running by a supervising thread.

    Args:
        count: Workers to run.
        env: Their environment (``VIDREC_REDIS_URL`` set).
        settings: The deployment's settings (key prefix, worker id).
        redis_url: The server, to see which workers are ready (heartbeat with models).
        plans: Per worker, its device and threads (:func:`service.devices.plan_workers`);
            empty: every worker gets ``env`` alone.
    """

    count: int
    env: dict[str, str]
    settings: Settings
    redis_url: str
    plans: list[WorkerPlan] = field(default_factory=list)
    slots: list[_Slot] = field(default_factory=list)
    fatal: str | None = None
    all_ready: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.slots = [_Slot(index) for index in range(1, self.count + 1)]
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._on_fatal: list[Any] = []
        self._thread = threading.Thread(target=self._supervise, name="worker-pool", daemon=True)

    def on_fatal(self, callback: Any) -> None:
        """Calls ``callback()`` (from the supervising thread) when the pool gives up."""
        self._on_fatal.append(callback)

    def start(self) -> None:
        """Starts every worker and the supervising thread."""
        for slot in self.slots:
            self._spawn(slot)
        self._thread.start()

    @property
    def pids(self) -> list[int]:
        """Process ids of the current workers."""
        with self._lock:
            return [s.process.pid for s in self.slots if s.process is not None]

    def _spawn(self, slot: _Slot) -> None:
        env = dict(self.env)
        if slot.index <= len(self.plans):
            env.update(self.plans[slot.index - 1].env())  # its GPU, its threads
        if self.settings.worker_id is not None:
            # A configured id must stay unique per worker and per restart: sessions of a dead
            # worker move only once its id's heartbeat has expired.
            suffix = f"-{slot.index}" + (f"-r{slot.generation}" if slot.generation else "")
            env["VIDREC_WORKER_ID"] = self.settings.worker_id + suffix
        process = subprocess.Popen(WORKER_COMMAND, env=env, stdin=subprocess.PIPE, process_group=0)
        with self._lock:
            slot.process = process
            slot.started_at = time.monotonic()
            slot.ready = False
            slot.restart_at = None
            slot.generation += 1
        say(f"worker {slot.index} started (pid {process.pid})")

    def _supervise(self) -> None:
        from service.keys import Keys
        from service.redis_conn import sync_client

        keys = Keys.from_settings(self.settings)
        client = sync_client(self.redis_url)
        last_check = 0.0
        try:
            while not self._stop.wait(POLL_S):
                now = time.monotonic()
                if now - last_check >= 1.0 and not all(s.ready for s in self.slots):
                    last_check = now
                    self._check_ready(client, keys)
                for slot in self.slots:
                    self._tend(slot, now)
                    if self.fatal is not None:
                        for callback in self._on_fatal:
                            callback()
                        return
        finally:
            client.close()

    def _check_ready(self, client: Any, keys: Any) -> None:
        """Marks the workers whose heartbeat advertises loaded models as ready."""
        import redis

        try:
            ids = [m.decode() for m in client.smembers(keys.workers)]
            ready: dict[int, list[str]] = {}
            for worker_id in ids:
                pid, models, live = client.hmget(
                    keys.worker(worker_id), "pid", "models", "live_models"
                )
                if pid is not None and (models not in (None, b"[]") or live not in (None, b"[]")):
                    ready[int(pid)] = [worker_id, (models or b"[]").decode()]
        except (redis.RedisError, OSError, ValueError):
            return
        for slot in self.slots:
            if slot.process is not None and not slot.ready and slot.process.pid in ready:
                worker_id, models = ready[slot.process.pid]
                with self._lock:
                    slot.ready = True
                    slot.start_failures = 0
                say(f"worker {slot.index} ready (id {worker_id}, models {models})")
        if all(s.ready for s in self.slots) and not self.all_ready.is_set():
            self.all_ready.set()

    def _tend(self, slot: _Slot, now: float) -> None:
        """Notices a dead worker and restarts it when its delay has passed."""
        process = slot.process
        if process is not None and process.poll() is not None:
            status = process.returncode
            ran = now - slot.started_at
            _close_stdin(process)
            with self._lock:
                slot.process = None
            if not slot.ready:
                slot.start_failures += 1
                if status == CONFIG_ERROR_STATUS or slot.start_failures >= MAX_START_FAILURES:
                    times = (
                        ""
                        if slot.start_failures == 1
                        else f", {slot.start_failures} times in a row"
                    )
                    self.fatal = (
                        f"worker {slot.index} exited with status {status} before it was ready"
                        f"{times} (see its messages above); stopping"
                    )
                    say(self.fatal, logging.ERROR)
                    return
                delay = 1.0
            else:
                slot.crashes = 0 if ran >= HEALTHY_AFTER_S else slot.crashes + 1
                delay = min(MAX_RESTART_DELAY_S, 2.0 ** max(0, slot.crashes - 1))
            slot.ready = False
            self.all_ready.clear()
            slot.restart_at = now + delay
            say(
                f"worker {slot.index} (pid {process.pid}) exited with status {status} after "
                f"{ran:.1f} s; restarting it in {delay:.0f} s",
                logging.WARNING,
            )
        if slot.process is None and slot.restart_at is not None and now >= slot.restart_at:
            self._spawn(slot)

    def stop(self, timeout_s: float, force: threading.Event | None = None) -> None:
        """Stops supervising, sends SIGTERM to every worker (they drain), waits up to
        ``timeout_s`` (or until ``force`` is set), then kills what is left."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        running = [(s.index, s.process) for s in self.slots if s.process is not None]
        for _, process in running:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        if running:
            say(f"waiting for {len(running)} worker(s) to drain")
        deadline = time.monotonic() + timeout_s
        for index, process in running:
            while process.poll() is None and time.monotonic() < deadline:
                if force is not None and force.is_set():
                    break
                time.sleep(0.05)
            if process.poll() is None:
                say(
                    f"worker {index} (pid {process.pid}) did not stop in time; killing it",
                    logging.WARNING,
                )
                process.kill()
            status = process.wait()
            _close_stdin(process)
            say(f"worker {index} (pid {process.pid}) stopped with status {status}")
        for slot in self.slots:
            slot.process = None


def _close_stdin(process: subprocess.Popen[bytes]) -> None:
    if process.stdin is not None and not process.stdin.closed:
        with contextlib.suppress(OSError):
            process.stdin.close()


def run_supervised_worker() -> int:
    """Body of a worker process of ``vidrec serve``: ``python -m service.worker``, plus a thread
    that notices the serve process going away (its stdin pipe closes, even when serve was
    killed) and then stops the worker as SIGTERM does, exiting anyway after a grace period.
    Without it a worker would outlive a killed serve, retrying a Redis that is gone."""
    import runpy

    def watch() -> None:
        # The raw descriptor, not sys.stdin: a daemon thread blocked on a buffered reader
        # aborts the interpreter's shutdown (it cannot take the buffer's lock).
        with contextlib.suppress(OSError):
            while os.read(0, 4096):
                pass
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(ORPHAN_GRACE_S)
        os._exit(1)

    threading.Thread(target=watch, name="serve-watch", daemon=True).start()
    try:
        runpy.run_module("service.worker", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def worker_env(
    settings: Settings, redis_url: str, models_dir: Path | None, workers: int = 1
) -> dict[str, str]:
    """The environment of the worker processes: this one, with the Redis URL and bundle dir, and
    unless set, torch threads for ``workers`` workers sharing this machine with the gateway and
    Redis (:func:`service.threads.default_torch_threads`)."""
    from service.threads import default_torch_threads

    env = dict(os.environ)
    env["VIDREC_REDIS_URL"] = redis_url
    if models_dir is not None:
        env["VIDREC_MODELS_DIR"] = str(models_dir)
    if settings.torch_threads is None and "OMP_NUM_THREADS" not in env:
        env["VIDREC_TORCH_THREADS"] = str(default_torch_threads(workers, shared=True))
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class _Stop:
    """What SIGINT/SIGTERM do outside uvicorn's own handling: ask to stop; a second signal
    stops waiting for the workers to drain."""

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.force = threading.Event()
        self.server: GatewayServer | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set() and self.server is None:
            self.force.set()
        self.requested.set()
        if self.server is not None:
            self.server.should_exit = True


def run(args: argparse.Namespace) -> int:
    if args.workers is not None and args.workers < 1:
        raise ValueError(f"--workers must be at least 1, got {args.workers}")
    if args.drain_timeout < 0:
        raise ValueError(f"--drain-timeout must not be negative, got {args.drain_timeout}")
    settings = load_settings(
        host=args.host, port=args.port, models_dir=args.models_dir, workers=args.workers
    )
    # Now, not with the gateway: the status lines before it are in the log format too.
    configure_logging(settings.log_format, args.log_level.upper())
    check_bundles(settings.models_dir)
    plans = plan_workers(
        settings.device,
        visible_gpus(settings.device),
        available_cores(),
        settings.workers,
        threads_set=settings.torch_threads is not None or "OMP_NUM_THREADS" in os.environ,
    )
    sock = bind(settings.host, settings.port)  # a port in use fails before anything starts

    stop = _Stop()
    # SIGHUP too: a closed terminal must not leave the workers (in their own process group)
    # running. uvicorn takes over SIGINT and SIGTERM while it runs and hands them back after.
    previous = {sig: signal.signal(sig, stop) for sig in STOP_SIGNALS}
    keeper: RedisKeeper | None = None
    pool: WorkerPool | None = None
    status = 0
    try:
        if settings.redis_url is None:
            keeper = RedisKeeper.start()
            redis_url = keeper.url
            say(f"embedded Redis on {redis_url} (pid {keeper.server_pid})")
        else:
            from service.redis_conn import ping_url

            redis_url = settings.redis_url
            if not ping_url(redis_url, timeout_s=3.0):
                raise ValueError(
                    f"the Redis server at {redis_url} (VIDREC_REDIS_URL) does not answer"
                )
            say(f"using the Redis server at {redis_url}")
        if stop.requested.is_set():
            return 0
        settings = settings.model_copy(update={"redis_url": redis_url})
        say(f"{describe_plan(plans)}; VIDREC_DTYPE={settings.dtype}")
        pool = WorkerPool(
            len(plans),
            worker_env(settings, redis_url, args.models_dir, len(plans)),
            settings,
            redis_url,
            plans,
        )
        url = base_url(sock)
        server = make_server(settings, args.log_level, lambda: announce(url, "serve"))
        stop.server = server
        pool.on_fatal(lambda: setattr(server, "should_exit", True))
        pool.start()
        if stop.requested.is_set():
            server.should_exit = True
        server.run(sockets=[sock])
        stop.server = None
        if pool.fatal is not None:
            status = 1
        say("stopping")
    except RuntimeError as exc:
        say(str(exc), logging.ERROR)
        status = 1
    finally:
        stop.server = None
        sock.close()
        if pool is not None:
            pool.stop(args.drain_timeout, stop.force)
        if keeper is not None:
            keeper.stop()
            say("embedded Redis stopped")
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return status
