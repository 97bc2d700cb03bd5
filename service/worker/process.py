"""The worker process: loads the models once, then serves clip jobs and sessions until stopped.

One loop in the main thread does all model work, so the runners' state is never shared between
threads: it reads the inbox and steps the sessions (they come first: a live stream waits on
them), then does one bounded unit of clip work (a decode, or a chunk of views, see
:mod:`service.worker.clips`) or takes a batch of clip jobs when none is left, so clip jobs and
live frames alternate and neither starves the other; at every heartbeat interval it checks its
sessions against Redis and adopts the sessions of dead workers. The heartbeat itself runs in a
thread (:mod:`service.worker.heartbeat`), so a long unit never makes the worker look dead.

SIGTERM or SIGINT stops taking work: the clip jobs already taken and the step in progress finish,
the RTSP readers stop, and the worker deregisters, so its sessions move to another worker at
once; it exits 0. A second signal exits at once.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any

import redis
import torch

from service.inference import ModelCatalog
from service.inference.precision import dtype_name
from service.keys import Keys
from service.logs import configure_logging
from service.metrics import WorkerMetrics
from service.queue import ClipConsumer, ClipTask, SessionInbox, WorkerRegistry
from service.redis_conn import sync_client
from service.settings import Settings
from service.threads import default_torch_threads
from service.worker.clips import ClipWork
from service.worker.heartbeat import Heartbeat
from service.worker.sessions import SessionManager

log = logging.getLogger(__name__)

# With sessions open the loop waits on the inbox this long when idle (a frame waits at most this
# for a clip job's read); with none, it waits on the clip stream a little longer.
SESSION_WAIT_MS = 20
CLIP_WAIT_MS = 100
# Session steps run back to back for at most this long before the next clip batch is taken.
SESSION_SLICE_S = 0.25
INBOX_READ_COUNT = 256
# Waits after a Redis error, doubling up to the cap.
RETRY_INITIAL_S = 0.2
RETRY_MAX_S = 5.0
SHUTDOWN_SOURCES_S = 2.0
# ConsumerStats fields counting jobs the consumer answered itself -> clip_jobs status.
_CONSUMER_ANSWERS = {"dead_lettered": "dead_letter", "expired": "upload_expired"}


class Worker:
    """A worker: its Redis client, models, clip consumer, sessions and heartbeat.

    Args:
        settings: ``redis_url`` is required.

    Raises:
        ValueError: No ``redis_url``.
        CatalogError, UnknownModelError: The models cannot be loaded.
    """

    def __init__(self, settings: Settings) -> None:
        if settings.redis_url is None:
            raise ValueError("a worker needs a Redis server: set VIDREC_REDIS_URL")
        threads = settings.torch_threads
        if threads is None and "OMP_NUM_THREADS" not in os.environ:
            threads = default_torch_threads()  # not torch's one per host core
        if threads is not None:
            torch.set_num_threads(threads)
        self.settings = settings
        self.worker_id = settings.resolved_worker_id()
        self.keys = Keys.from_settings(settings)
        self.catalog = ModelCatalog.load(
            settings.models_dir,
            settings.models,
            settings.device,
            dtype=settings.dtype,
            clip_model=settings.clip_model,
            live_model=settings.live_model,
        )
        self.redis = sync_client(settings.redis_url)
        self.metrics = WorkerMetrics()
        self.consumer = ClipConsumer(self.redis, self.keys, self.worker_id, settings)
        self.registry = WorkerRegistry(self.redis, self.keys, self.worker_id)
        self.inbox = SessionInbox(self.redis, self.keys, self.worker_id)
        self.sessions = SessionManager(self.inbox, self.catalog, self.metrics, settings)
        self.clips = ClipWork(
            self.consumer,
            self.catalog,
            self.metrics,
            settings,
            self.worker_id,
            self._served_elsewhere,
        )
        self.heartbeat = Heartbeat(settings.heartbeat_interval_s, self.beat)
        self._described = self.catalog.describe()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._batch: list[ClipTask] = []  # the clip jobs taken and not answered, for the beat
        self._batch_size = 0
        self._requeued_mark = 0
        self._next_maintenance = 0.0
        self._retry_s = RETRY_INITIAL_S
        self._answers_seen: dict[str, int] = {}
        self.registered = False

    # Control.

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def stop(self) -> None:
        """Asks the loop to finish what it has taken and end (safe from a signal handler or
        another thread)."""
        self._stop.set()

    def close(self) -> None:
        """Closes the Redis client."""
        self.redis.close()

    # Heartbeat.

    def beat(self) -> None:
        """Publishes this worker's state and metrics, and renews the jobs it is running."""
        draining = self.stopping
        info: dict[str, Any] = {
            "models": self.catalog.names,
            # A draining worker takes no new sessions.
            "live_models": [] if draining else self.sessions.live_models,
            "catalog": self._described,
            "sessions": len(self.sessions),
            "capacity": self.settings.session_capacity,
            "stride": self.settings.stride,
            "device": str(self.catalog.device),
            "dtype": dtype_name(self.catalog.dtype),
            "state": "draining" if draining else "running",
            "jobs_running": len(self._batch),
            "torch_threads": torch.get_num_threads(),
        }
        self.registry.beat(info, self.metrics.render())
        self.registered = True
        with self._lock:
            batch = list(self._batch)
        if batch:
            self.consumer.touch(batch)

    def _served_elsewhere(self, model: str) -> bool:
        """Whether another live worker advertises ``model`` for clips."""
        return bool(self.registry.others_serving(model))

    # The loop.

    def run(self) -> int:
        """Serves until :meth:`stop`; returns the exit status (0)."""
        log.info(
            "worker %s: models %s (live: %s) on %s in %s, torch threads: %d",
            self.worker_id,
            ", ".join(self.catalog.names),
            ", ".join(self.catalog.live_names) or "none",
            self.catalog.device,
            dtype_name(self.catalog.dtype),
            torch.get_num_threads(),
        )
        self._start()
        try:
            while not self.stopping:
                try:
                    self._iteration()
                    self._retry_s = RETRY_INITIAL_S
                except (redis.RedisError, OSError) as exc:
                    log.warning("redis: %s; retrying in %.1f s", exc, self._retry_s)
                    self._stop.wait(self._retry_s)
                    self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
                except Exception:
                    log.exception("worker loop error; going on")
                    self._stop.wait(self._retry_s)
            self._drain_clips()
        finally:
            self._shutdown()
        return 0

    def _start(self) -> None:
        """Registers (models loaded, ready for work) and picks up sessions left under this id."""
        while not self.stopping:
            try:
                self.consumer.ensure_group()
                self.beat()
                self.sessions.resume_owned()
                break
            except (redis.RedisError, OSError) as exc:
                log.warning("redis: %s; retrying in %.1f s", exc, self._retry_s)
                self._stop.wait(self._retry_s)
                self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
        self.heartbeat.start()

    def _iteration(self) -> None:
        now = time.monotonic()
        if now >= self._next_maintenance:
            self._next_maintenance = now + self.settings.heartbeat_interval_s
            self._maintain()
        worked = self._session_work()
        if self.stopping:
            return
        if self.clips.busy:
            self._clip_step()
            return
        idle_block = None if worked or len(self.sessions) else CLIP_WAIT_MS
        tasks = self.consumer.read(self.settings.worker_batch, block_ms=idle_block)
        self._count_consumer_answers()
        if tasks:
            self._take_clips(tasks)
        elif not worked and len(self.sessions):
            messages = self.inbox.read(block_ms=SESSION_WAIT_MS, count=INBOX_READ_COUNT)
            self.sessions.handle(messages)

    def _count_consumer_answers(self) -> None:
        """Counts the jobs the consumer answered itself (dead-lettered, upload expired); their
        model is not known here, so the label is empty."""
        stats = self.consumer.stats
        for attr, status in _CONSUMER_ANSWERS.items():
            value = getattr(stats, attr)
            new = value - self._answers_seen.get(attr, 0)
            if new > 0:
                self.metrics.clip_jobs.labels(model="", status=status).inc(new)
                self._answers_seen[attr] = value

    def _maintain(self) -> None:
        """Drops sessions that ended or moved, ends those whose lease lapsed or that went idle,
        adopts orphans, starts RTSP sessions whose open or budget message was lost, writes
        counters."""
        self.sessions.reconcile()
        self.sessions.expire()
        if not self.stopping:
            listing = self.inbox.open_sessions()  # one read of the open sessions for both
            for session_id in self.sessions.adopt_orphans(listing):
                log.info("adopted session %s", session_id)
            self.sessions.start_missed_sources(listing)
            self.sessions.catch_up_source_budgets()
        self.sessions.flush()

    def _session_work(self) -> bool:
        """Inbox messages and session steps until no frame waits (or the slice is used up);
        returns whether anything was done."""
        deadline = time.monotonic() + SESSION_SLICE_S
        worked = False
        while True:
            messages = self.inbox.read(count=INBOX_READ_COUNT)
            self.sessions.handle(messages)
            self.sessions.poll_sources()
            worked = worked or bool(messages)
            if not self.sessions.pending():
                return worked
            self.sessions.step()
            worked = True
            if self.stopping or time.monotonic() >= deadline:
                return worked

    def _take_clips(self, tasks: list[ClipTask]) -> None:
        """Takes on a batch of clip jobs; the next iterations work through it."""
        self._batch_size = len(tasks)
        self._requeued_mark = self.clips.requeued
        self.clips.add(tasks)
        with self._lock:
            self._batch = self.clips.tasks

    def _clip_step(self) -> None:
        """One unit of clip work."""
        try:
            self.clips.step()
        except (redis.RedisError, OSError):
            raise  # the jobs stay; the loop retries once Redis answers
        except BaseException:
            # What was not answered goes back to the group (XAUTOCLAIM).
            self.consumer.release(self.clips.tasks)
            self.clips.jobs.clear()
            raise
        finally:
            with self._lock:
                self._batch = self.clips.tasks
        if not self.clips.busy and self.clips.requeued - self._requeued_mark == self._batch_size:
            self._stop.wait(CLIP_WAIT_MS / 1000)  # only jobs for others: let them take them

    def _drain_clips(self) -> None:
        """Answers the clip jobs taken before the stop, with the sessions still stepped between
        units until then."""
        while self.clips.busy:
            try:
                self._session_work()
                self._clip_step()
            except (redis.RedisError, OSError) as exc:
                log.warning(
                    "could not answer the clip jobs taken (%s); they will be reclaimed", exc
                )
                self.consumer.release(self.clips.tasks)
                self.clips.jobs.clear()
                return

    def _shutdown(self) -> None:
        """Stops the heartbeat, records the sessions' counters, stops the readers, deregisters."""
        self.heartbeat.stop()
        try:
            self.sessions.flush()
        except (redis.RedisError, OSError) as exc:
            log.warning("could not record the sessions' counters: %s", exc)
        self.sessions.stop_sources(SHUTDOWN_SOURCES_S)
        try:
            self.registry.deregister()
        except (redis.RedisError, OSError) as exc:
            log.warning("could not deregister (the heartbeat expires by itself): %s", exc)
        log.info("worker %s stopped", self.worker_id)


def _configure_logging(settings: Settings) -> None:
    if not logging.getLogger().handlers:  # a host that set up logging (tests) keeps its own
        configure_logging(settings.log_format)


def run_worker(settings: Settings) -> int:
    """Runs a worker until SIGTERM or SIGINT; returns the process exit status.

    0 after a clean drain; 2 when the models or settings cannot be used. A second signal ends
    the process at once (128 + the signal number).
    """
    _configure_logging(settings)
    try:
        worker = Worker(settings)
    except ValueError as exc:  # CatalogError and UnknownModelError are ValueErrors
        log.error("worker cannot start: %s", exc)
        return 2
    in_main = threading.current_thread() is threading.main_thread()
    previous: dict[signal.Signals, Any] = {}

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if worker.stopping:
            os._exit(128 + signum)
        log.info("signal %d: draining", signum)
        worker.stop()

    if in_main:
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, on_signal)
    try:
        return worker.run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        worker.close()
