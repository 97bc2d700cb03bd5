"""The life of live and RTSP sessions on their owner worker: inbox messages, opening, adoption,
leases and idle timeouts, RTSP readers, events and counters.

The worker's session code is split as an inference engine's is: the scheduler
(:mod:`service.worker.scheduler`) keeps the books (backlogs, drops, budgets, which sessions have a
frame due), the runner (:mod:`service.worker.runner`) owns the tensors (live runners and their
slot pools) and runs a step, and this module decides what happens to sessions and publishes it.
Each :meth:`SessionManager.step` takes the scheduler's plan (the oldest waiting frame of every
session), decodes the frames (a bad one becomes an ``error`` event, counted as dropped, and the
session goes on), runs them in one batched step per runner, and publishes the labels and the
counters. A session takes its slot at its first frame here.

Events (JSON on the session's stream):

- ``{"type": "labels", "session_id", "model", "frame_index", "labels": [{"label", "score"}],
  "window", "compute": {"gmacs", "dense_gmacs", "recompute_fraction", "frames"}, "totals": {...},
  "latency_ms", "timing_ms": {"queue_wait", "decode", "inference", "total"}, "dropped",
  "input_index"}`` (``service.wire.LabelsEvent``; ``timing_ms`` is the newest frame's time)
- ``{"type": "error", "session_id", "code", "message", "input_index"?}``
- ``{"type": "moved", "session_id", "owner", "worker", "from", "epoch", "frame_index",
  "recovered_frames", "lost_frames"}``: the session resumed on ``worker``; frames still waiting
  for the dead owner were taken over (``recovered_frames``), and ``lost_frames`` counts those it
  had taken and never processed (also in the ``frames_lost`` counter).
- ``{"type": "source", "session_id", "state", "session_state", "frames_received",
  "reconnects", "attempts", "next_retry_s"?, "error"?}``
- ``{"type": "expired", "session_id", "reason", "message"}``: the session ended because its
  lease lapsed (``lease_expired``: the gateway connection holding it is gone) or no frame came for
  ``session_idle_s`` (``idle``).

Counters (``frames_processed``, ``frames_dropped``) are written after every step, in one round
trip for the whole batch, so a worker that dies leaves them exact up to its last step: whoever
adopts its sessions knows which frames were lost. A frame that does not decode counts as dropped.
"""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import redis

from service.budget import default_budget
from service.inference import CapacityError, LiveEvent, ModelCatalog, parse_budget
from service.ingest import IngestError, StreamState
from service.metrics import WorkerMetrics
from service.queue import FINAL_STATES, Adoption, SessionInbox, SessionInfo, SessionMessage
from service.settings import Settings
from service.worker.answers import error_event, labels_event, session_event
from service.worker.runner import Runner, StepFailure
from service.worker.scheduler import Books, Frame, Scheduler
from service.worker.sources import RtspSource, StateChange

log = logging.getLogger(__name__)

# Ids of sessions found not to be this worker's, remembered so their frames cost no lookup.
_FOREIGN_MEMORY = 1024
# How long an RTSP session may stay recorded as this worker's without running here before it is
# started from its record: its open message is normally read within milliseconds.
MISSED_OPEN_GRACE_S = 5.0
# A camera away for hours: every failed attempt is in the session hash, but events only for the
# first few attempts and then at most once per this many seconds, so they do not push the
# session's labels out of its bounded event stream.
RECONNECT_EVENTS_FIRST = 5
RECONNECT_EVENT_EVERY_S = 60.0


@dataclass
class LocalSession:
    """What the owner keeps about one session.

    Attributes:
        session_id: The session.
        kind: ``live`` or ``rtsp``.
        model: Its model.
        budget: Its budget (JSON form).
        stride: Labels every this many frames; ``None`` until known.
        first_index: Frames processed before it came here (a moved session keeps counting).
        books: Its backlog and counters, kept by the scheduler.
        source: Its RTSP reader.
        last_reconnect_event: When its last ``reconnecting`` source event went out.
        budget_seq: The number of the latest budget change taken here (by message, or from the
            hash when its message was lost); 0 for the first budget.
        budget_seq_ahead: The record's count when a check last found it ahead of ``budget_seq``
            (an RTSP session's change not arrived yet), ``None`` otherwise.
    """

    session_id: str
    kind: str
    model: str
    budget: dict[str, Any]
    stride: int | None
    first_index: int
    books: Books
    source: RtspSource | None = None
    last_reconnect_event: float = float("-inf")
    budget_seq: int = 0
    budget_seq_ahead: int | None = None


class SessionManager:
    """The sessions a worker owns and the live runners they run on.

    Args:
        inbox: The worker's inbox (messages, events, session hashes).
        catalog: The loaded models.
        metrics: The worker's metrics.
        settings: Capacity, stride, backlog, frame limits, RTSP settings, default budget.
    """

    def __init__(
        self,
        inbox: SessionInbox,
        catalog: ModelCatalog,
        metrics: WorkerMetrics,
        settings: Settings,
    ) -> None:
        self.inbox = inbox
        self.catalog = catalog
        self.metrics = metrics
        self.settings = settings
        self.worker_id = inbox.worker_id
        self.scheduler = Scheduler(settings.session_backlog)
        self.runner = Runner(
            catalog, settings.session_capacity, settings.stride, settings.frame_limits()
        )
        self.sessions: dict[str, LocalSession] = {}
        self.source_changes: queue.SimpleQueue[StateChange] = queue.SimpleQueue()
        self._foreign: dict[str, None] = {}

    # What the heartbeat says.

    @property
    def live_models(self) -> list[str]:
        return list(self.catalog.live_names)

    @property
    def capacity(self) -> int:
        return self.settings.session_capacity

    def __len__(self) -> int:
        return len(self.sessions)

    def room_for(self, model: str, coming: Iterable[str] = ()) -> bool:
        """Whether a session of ``model`` can open here now, besides sessions of the models
        ``coming`` that are about to."""
        coming = list(coming)
        if model not in self.catalog.live_names:
            return False
        if len(self.sessions) + len(coming) >= self.capacity:
            return False
        same = sum(1 for s in self.sessions.values() if s.model == model) + coming.count(model)
        return same < self.capacity

    # Inbox messages.

    def handle(self, messages: Iterable[SessionMessage]) -> None:
        """Applies inbox messages in order."""
        for message in messages:
            try:
                self._handle(message)
            except IngestError as exc:
                self._error(message.session_id, exc.code, exc.message)
            except (redis.RedisError, OSError):
                raise  # the loop waits for Redis to come back
            except Exception:
                log.exception("session %s: %s message failed", message.session_id, message.type)

    def _handle(self, message: SessionMessage) -> None:
        session_id = message.session_id
        if not session_id:
            return
        session = self.sessions.get(session_id)
        kind = message.type
        if kind == "close":
            if session is not None:
                self.close_local(session_id, write=True)
            return
        if session is None:
            if session_id in self._foreign:
                if kind == "frame":
                    self.metrics.dropped("no_session")
                return
            session = self._open_if_mine(session_id, message.budget if kind == "open" else None)
            if session is None:
                if kind == "frame":
                    self.metrics.dropped("no_session")
                return
        if kind == "frame":
            self._enqueue(session, message)
        elif kind == "budget":
            if message.budget_seq is not None:
                if message.budget_seq <= session.budget_seq:
                    return  # taken from the hash already, when a frame showed it missing
                session.budget_seq = message.budget_seq
            self._set_budget(session, message.budget)
        # "open" for a session open here already: nothing to do.

    def _open_if_mine(
        self, session_id: str, budget: dict[str, Any] | None = None
    ) -> LocalSession | None:
        """Opens a session this worker owns that it does not run yet; ``None`` when not ours.

        ``budget``: the first budget, when the open message carries one (the hash holds the
        latest, which may already be a change that must wait for its frames).
        """
        info = self.inbox.get(session_id)
        if info is None or not info.open or info.owner != self.worker_id:
            self._remember_foreign(session_id)
            return None
        if budget:
            info = replace(info, budget=budget, budget_seq=0)
        return self.open(info)

    def _remember_foreign(self, session_id: str) -> None:
        self._foreign[session_id] = None
        while len(self._foreign) > _FOREIGN_MEMORY:
            self._foreign.pop(next(iter(self._foreign)))

    def open(
        self,
        info: SessionInfo,
        moved_from: str | None = None,
        adoption: Adoption | None = None,
        recovered: list[SessionMessage] | None = None,
    ) -> LocalSession | None:
        """Starts running a session this worker owns (new, adopted, or left from a restart).

        Its first frame here recomputes every token; frame numbering goes on from what the
        session processed elsewhere. A session that cannot run here fails with an error event.
        An adopted one (``adoption``) first runs the frames ``recovered`` from the dead owner's
        inbox, and its ``moved`` event counts the frames lost with the owner.
        """
        session_id = info.session_id
        self._foreign.pop(session_id, None)
        if info.model not in self.catalog.live_names:
            self._fail(
                session_id,
                "unknown_model",
                f"this worker does not run model {info.model!r} live; it runs "
                f"{', '.join(self.catalog.live_names) or 'none'}",
            )
            return None
        if not self.room_for(info.model):
            self._fail(
                session_id,
                "capacity",
                f"worker {self.worker_id} has no free session slot for model {info.model!r}",
            )
            return None
        fallback = default_budget(
            self.settings.default_budget, self.catalog.get(info.model).recommended_budget
        )
        budget = info.budget or fallback
        try:
            parse_budget(budget)
        except ValueError as exc:
            self._error(session_id, "invalid_budget", f"{exc}; the default budget is used")
            budget = fallback
        last = info.last_event or {}
        first_index = max(info.frames_processed, int(last.get("frame_index") or 0))
        session = LocalSession(
            session_id=session_id,
            kind=info.kind,
            model=info.model,
            budget=budget,
            stride=info.stride,
            first_index=first_index,
            books=self.scheduler.add(session_id, first_index, info.frames_dropped),
            budget_seq=info.budget_seq,
        )
        self.sessions[session_id] = session
        if moved_from is not None:
            self._moved(session, info, moved_from, adoption, recovered or [])
        if info.kind == "rtsp":
            if not self._start_source(session, info):
                return None
        else:
            self.inbox.update(session_id, state="running")
        log.info(
            "session %s (%s, %s) open here%s",
            session_id,
            info.kind,
            info.model,
            f", moved from {moved_from}" if moved_from else "",
        )
        return session

    def _moved(
        self,
        session: LocalSession,
        info: SessionInfo,
        moved_from: str,
        adoption: Adoption | None,
        recovered: list[SessionMessage],
    ) -> None:
        """Queues the frames taken over from the dead owner's inbox and says what was lost."""
        lost = 0
        if adoption is not None and info.kind == "live":
            lost = adoption.unaccounted(len(recovered), session.first_index)
        if lost:
            self.inbox.redis.hincrby(
                self.inbox.keys.session(session.session_id), "frames_lost", lost
            )
            self.metrics.dropped("lost", lost)
        self.inbox.publish(
            session.session_id,
            session_event(
                {
                    "type": "moved",
                    "session_id": session.session_id,
                    "owner": self.worker_id,
                    "worker": self.worker_id,
                    "from": moved_from,
                    "epoch": adoption.epoch if adoption is not None else info.epoch,
                    "frame_index": session.first_index,
                    "recovered_frames": len(recovered),
                    "lost_frames": lost,
                }
            ),
        )
        for message in recovered:
            self._enqueue(session, message)

    def _start_source(self, session: LocalSession, info: SessionInfo) -> bool:
        """Starts the session's RTSP reader; a refused URL fails the session."""
        url = info.source_url
        if not url:
            self._fail(session.session_id, "invalid_source", "the session has no source URL")
            return False
        short_side = self.catalog.get(info.model).config.preprocessing.resize_size
        try:
            source = RtspSource(
                session.session_id, url, self.settings, short_side, self.source_changes
            )
        except IngestError as exc:
            self._fail(session.session_id, exc.code, exc.message)
            return False
        session.source = source
        self.inbox.update(session.session_id, state="opening", source_health=source.health())
        source.start()
        return True

    def _enqueue(self, session: LocalSession, message: SessionMessage) -> None:
        if message.data is None:
            self._error(session.session_id, "invalid_message", "a frame message without data")
            return
        if message.budget_seq is not None and message.budget_seq > session.budget_seq:
            self._catch_up_budget(session, message.budget_seq)
        frame = Frame(
            input_index=message.index, data=message.data, received_wall=message.received_s
        )
        self._push(session, frame)

    def _push(self, session: LocalSession, frame: Frame) -> None:
        dropped = self.scheduler.push(session.session_id, frame)
        if dropped:
            self.metrics.dropped("backlog", dropped)

    def _set_budget(self, session: LocalSession, budget: dict[str, Any] | None) -> None:
        """A budget message: it applies from the frames sent after it, so with frames waiting
        it waits for the next frame to arrive."""
        try:
            parse_budget(budget or {})
        except ValueError as exc:
            self._error(session.session_id, "invalid_budget", str(exc))
            return
        assert budget is not None
        if self.scheduler.budget_now(session.session_id, budget):
            self._apply_budget(session, budget)

    def _catch_up_budget(self, session: LocalSession, sent: int) -> None:
        """A budget change numbered ``sent`` (or later) never arrived: a stalled worker's inbox
        is trimmed oldest first. The hash holds the latest budget; it applies from the next
        frame, where the lost message stood (or, when later changes are lost too, a little
        early for the frames between them)."""
        info = self.inbox.get(session.session_id)
        if info is None:
            return
        log.warning(
            "session %s: budget change %d never arrived; taking the recorded one (%d)",
            session.session_id,
            sent,
            info.budget_seq,
        )
        session.budget_seq = max(sent, info.budget_seq)
        self._set_budget(session, info.budget)

    def catch_up_source_budgets(self) -> list[str]:
        """Applies the recorded budget of each RTSP session whose budget message was lost (no
        frame of theirs comes through the inbox to show it); returns their ids. A change is
        taken as lost when the record was ahead at the check before too: one sent just now
        may still be on its way through the inbox."""
        sources = [sid for sid, s in self.sessions.items() if s.kind == "rtsp"]
        caught = []
        for session_id, seq in self.inbox.budget_seqs(sources).items():
            session = self.sessions.get(session_id)
            if session is None or seq <= session.budget_seq:
                continue
            ahead = session.budget_seq_ahead
            if ahead is not None and ahead > session.budget_seq:  # not arrived since: lost
                self._catch_up_budget(session, seq)
                caught.append(session_id)
                session.budget_seq_ahead = None
            else:
                session.budget_seq_ahead = seq
        return caught

    def _apply_budget(self, session: LocalSession, budget: dict[str, Any]) -> None:
        session.budget = budget
        self.runner.set_budget(session.session_id, budget)

    # RTSP sources.

    def poll_sources(self) -> None:
        """Moves the readers' frames into the backlogs and reports their state changes."""
        while True:
            try:
                session_id, state = self.source_changes.get_nowait()
            except queue.Empty:
                break
            session = self.sessions.get(session_id)
            if session is not None and session.source is not None:
                self._source_state(session, state)
        for session in list(self.sessions.values()):
            if session.source is None:
                continue
            for frame in session.source.frames():
                self._push(
                    session,
                    Frame(
                        input_index=frame.index,
                        image=frame.image,
                        received_mono=frame.received_at,
                    ),
                )
            drops = session.source.new_drops()
            self.scheduler.count_drops(session.session_id, drops)
            if drops:
                self.metrics.dropped("backlog", drops)

    def _source_state(self, session: LocalSession, state: StreamState) -> None:
        assert session.source is not None
        session_state = session.source.session_state(state)
        if session_state is None:
            return
        health = session.source.health()
        if self._report_source(session, state, session_state, health["attempts"]):
            event: dict[str, Any] = {
                "type": "source",
                "session_id": session.session_id,
                "state": state.value,
                "session_state": session_state,
                "frames_received": health["frames_received"],
                "reconnects": health["reconnects"],
                "attempts": health["attempts"],
            }
            if health["next_attempt_in_s"] is not None:
                event["next_retry_s"] = round(health["next_attempt_in_s"], 3)
            if health["last_error"] is not None and state is not StreamState.STREAMING:
                event["error"] = health["last_error"]
            self.inbox.publish(session.session_id, session_event(event))
        self.inbox.update(session.session_id, state=session_state, source_health=health)
        if session_state == "failed":
            self.close_local(session.session_id, write=True)

    def _report_source(
        self, session: LocalSession, state: StreamState, session_state: str, attempts: int
    ) -> bool:
        """Whether a reader's state change becomes an event: every one, except that a camera
        away for long reports its failed attempts only now and then (the hash has them all)."""
        if session_state != "reconnecting":
            return True
        if state is not StreamState.RECONNECTING:
            return False  # connecting again while reconnecting: the next failure says it
        now = time.monotonic()
        if attempts <= RECONNECT_EVENTS_FIRST or (
            now - session.last_reconnect_event >= RECONNECT_EVENT_EVERY_S
        ):
            session.last_reconnect_event = now
            return True
        return False

    # Steps.

    def pending(self) -> bool:
        """Whether some session has a frame waiting."""
        return self.scheduler.pending()

    def step(self) -> int:
        """One batched step per runner over every session with a frame waiting (the
        scheduler's plan); returns the frames processed."""
        plan = self.scheduler.due()
        images: dict[str, np.ndarray] = {}
        frames: dict[str, Frame] = {}
        waits: dict[str, tuple[float, float]] = {}  # ms: queued until its step, decoding
        for session_id, frame in plan.items():
            session = self.sessions[session_id]
            if frame.budget is not None:
                self._apply_budget(session, frame.budget)
            queued_ms, started = frame.latency_ms(), time.perf_counter()
            image = self._image(session, frame)
            decode_ms = (time.perf_counter() - started) * 1000.0 if frame.data is not None else 0.0
            if image is not None and self._hold_slot(session):
                images[session_id], frames[session_id] = image, frame
                waits[session_id] = (queued_ms, decode_ms)
        done: list[LocalSession] = []
        labels: list[tuple[str, dict[str, Any]]] = []  # the step's events, published at once
        for result in self.runner.step(images):
            if isinstance(result, StepFailure):
                log.error(
                    "live step of %d sessions on %s failed: %s",
                    len(result.session_ids),
                    result.key[0],
                    result.error,
                )
                for sid in result.session_ids:
                    message = f"the step failed: {result.error}; restarting"
                    self._error(sid, "inference_failed", message)
                continue
            costs = result.costs.values()
            self.metrics.observe_step(
                result.key[0],
                seconds=result.seconds,
                frames=len(result.costs),
                gmacs=sum(c.gmacs for c in costs),
                dense_gmacs=sum(c.dense_gmacs for c in costs),
                recompute_fractions=[c.recompute_fraction for c in costs],
            )
            self.scheduler.processed(list(result.costs))
            for sid, event in result.events.items():
                session = self.sessions[sid]
                done.append(session)
                if event is not None:
                    timing = (*waits[sid], result.seconds * 1000.0)
                    labels.append((sid, self._labels(session, event, frames[sid], timing)))
        self._write_counters(done, labels)
        return len(done)

    def _image(self, session: LocalSession, frame: Frame) -> np.ndarray | None:
        """The frame decoded; a bad one becomes an error event and counts as dropped."""
        started = time.perf_counter()
        try:
            short_side = self.catalog.get(session.model).config.preprocessing.resize_size
            image = self.runner.image(frame, short_side)
        except IngestError as exc:
            self.metrics.dropped("decode")
            self.scheduler.count_drops(session.session_id, 1)
            self._error(session.session_id, exc.code, exc.message, input_index=frame.input_index)
            return None
        if frame.data is not None:
            self.metrics.decode_seconds.observe(time.perf_counter() - started)
        return image

    def _hold_slot(self, session: LocalSession) -> bool:
        """Whether the session holds a slot of its runner, taking one at its first frame."""
        if session.session_id in self.runner:
            return True
        if session.stride is None:  # recorded with the session; absent means the default
            info = self.inbox.get(session.session_id)
            session.stride = (info.stride if info is not None else None) or self.settings.stride
        try:
            self.runner.open(
                session.session_id,
                session.model,
                session.stride,
                session.budget,
                session.first_index,
            )
        except (CapacityError, ValueError) as exc:
            self._fail(session.session_id, "capacity", str(exc))
            return False
        return True

    def _labels(
        self,
        session: LocalSession,
        event: LiveEvent,
        frame: Frame,
        timing: tuple[float, float, float],
    ) -> dict[str, Any]:
        """The labels event with its newest frame's time: queued, decoding, its step."""
        queue_wait_ms, decode_ms, inference_ms = timing
        return labels_event(
            event,
            latency_ms=frame.latency_ms(),
            dropped=session.books.dropped,
            input_index=frame.input_index,
            queue_wait_ms=queue_wait_ms,
            decode_ms=decode_ms,
            inference_ms=inference_ms,
        )

    # Bookkeeping.

    def _write_counters(
        self, sessions: list[LocalSession], events: Sequence[tuple[str, dict[str, Any]]] = ()
    ) -> None:
        """Writes the counters of ``sessions``, after publishing ``events`` (a step's labels),
        in one round trip."""
        self.inbox.publish_step(
            list(events),
            {
                s.session_id: {
                    "frames_processed": s.books.processed,
                    "frames_dropped": s.books.dropped,
                }
                for s in sessions
            },
        )
        for session in sessions:
            session.books.dirty = False

    def flush(self) -> None:
        """Writes counters that changed and the readers' health."""
        self._write_counters([self.sessions[sid] for sid in self.scheduler.dirty()])
        for session in list(self.sessions.values()):
            if session.source is not None:
                self.inbox.update(session.session_id, source_health=session.source.health())

    def expire(self) -> list[str]:
        """Ends the live sessions whose lease lapsed (their gateway connection is gone) or that
        had no frame for ``session_idle_s``; returns their ids."""
        live = [s for s in self.sessions.values() if s.kind == "live"]
        if not live:
            return []
        held = self.inbox.leases(s.session_id for s in live)
        idle_after = self.settings.session_idle_s
        idle = set(self.scheduler.idle([s.session_id for s in live], idle_after))
        ended = []
        for session in live:
            if session.session_id not in held:
                reason = "lease_expired"
                message = (
                    "the gateway connection holding the session stopped renewing its lease "
                    f"for {self.settings.session_lease_s:g} s; the session ended"
                )
            elif session.session_id in idle:
                reason = "idle"
                message = f"no frame for {idle_after:g} s; the session ended"
            else:
                continue
            self._expire(session.session_id, reason, message)
            ended.append(session.session_id)
        return ended

    def _expire(self, session_id: str, reason: str, message: str) -> None:
        log.info("session %s ended: %s", session_id, reason)
        self.inbox.publish(
            session_id,
            session_event(
                {"type": "expired", "session_id": session_id, "reason": reason, "message": message}
            ),
        )
        self.close_local(session_id, write=True)
        self.inbox.end(session_id, "closed", reason)

    def reconcile(self) -> None:
        """Stops running sessions that ended, or that another worker adopted meanwhile (this one
        looked dead to it), without a message saying so."""
        for session_id, (owner, state) in self.inbox.owners(self.sessions).items():
            if owner is None or state in FINAL_STATES:
                self.close_local(session_id, write=owner is not None)
            elif owner != self.worker_id:
                log.warning("session %s was adopted by %s; stopping it here", session_id, owner)
                self.close_local(session_id, write=False)
                self._remember_foreign(session_id)

    def adopt_orphans(self, listing: list[tuple[str, str]] | None = None) -> list[str]:
        """Adopts open sessions whose owner died, for the live models this worker runs, while it
        has room; returns their ids. A live orphan whose lease lapsed too (its gateway went as
        well) is ended instead. ``listing``: the open sessions, when the caller has read them
        (``SessionInbox.open_sessions``)."""
        orphans = [sid for sid in self.inbox.orphans(listing) if sid not in self.sessions]
        held = self.inbox.leases(orphans)
        claimed: list[tuple[SessionInfo, str, Adoption]] = []  # (session, dead owner, adoption)
        for session_id in orphans:
            info = self.inbox.get(session_id)
            if info is None or not info.open:
                continue
            if info.kind == "live" and session_id not in held:
                self.inbox.publish(
                    session_id,
                    session_event(
                        {
                            "type": "expired",
                            "session_id": session_id,
                            "reason": "lease_expired",
                            "message": "its worker and the gateway connection holding it are gone",
                        }
                    ),
                )
                self.inbox.end(session_id, "closed", "lease_expired")
                continue
            if not self.room_for(info.model, (c[0].model for c in claimed)):
                continue
            adoption = self.inbox.adopt(session_id, info.owner)
            if adoption is None:
                continue  # another worker won it, or the owner came back
            fresh = self.inbox.get(session_id)
            if fresh is not None and fresh.open:
                claimed.append((fresh, info.owner, adoption))
        # The frames waiting in each dead owner's inbox, read once for all its sessions taken.
        dead: dict[str, list[str]] = {}
        for fresh, owner, _ in claimed:
            if fresh.kind == "live":
                dead.setdefault(owner, []).append(fresh.session_id)
        waiting = {owner: self.inbox.take_frames(owner, ids) for owner, ids in dead.items()}
        adopted = []
        for fresh, owner, adoption in claimed:
            recovered = waiting.get(owner, {}).get(fresh.session_id, [])
            if self.open(fresh, owner, adoption, recovered) is not None:
                adopted.append(fresh.session_id)
        return adopted

    def start_missed_sources(self, listing: list[tuple[str, str]] | None = None) -> list[str]:
        """Starts the RTSP sessions recorded as this worker's that it does not run, some
        ``MISSED_OPEN_GRACE_S`` after they were opened; returns their ids. ``listing``: the
        open sessions, when the caller has read them (``SessionInbox.open_sessions``).

        Their open message was lost: a stalled worker's inbox is trimmed to about
        ``INBOX_MAXLEN`` entries, oldest first. A live session recovers by itself (its next
        frame opens it here, :meth:`_open_if_mine`); an RTSP session brings no frames, so it
        would stay ``opening`` with nothing reading its camera.
        """
        started = []
        for session_id in self.inbox.owned(listing):
            if session_id in self.sessions:
                continue
            info = self.inbox.get(session_id)
            if (
                info is None
                or not info.open
                or info.kind != "rtsp"
                or info.owner != self.worker_id
                or time.time() - info.created < MISSED_OPEN_GRACE_S
            ):
                continue
            log.warning("session %s: its open message never came; starting it", session_id)
            if self.open(info) is not None:
                started.append(session_id)
        return started

    def resume_owned(self) -> list[str]:
        """Runs the open sessions recorded as this worker's at start-up (a restart under the
        same id): they start afresh, as if moved."""
        resumed = []
        for session_id in self.inbox.owned():
            if session_id in self.sessions:
                continue
            info = self.inbox.get(session_id)
            if info is not None and info.open and self.open(info, moved_from=self.worker_id):
                resumed.append(session_id)
        return resumed

    def close_local(self, session_id: str, *, write: bool) -> None:
        """Stops running a session here (its reader too); ``write`` records its last counters."""
        session = self.sessions.pop(session_id, None)
        if session is None:
            return
        self.runner.close(session_id)
        self.scheduler.remove(session_id)
        if session.source is not None:
            session.source.stop()
        if write:
            self._write_counters([session])
        log.info("session %s stopped here", session_id)

    def stop_sources(self, timeout_s: float = 2.0) -> None:
        """Stops every RTSP reader, waiting up to ``timeout_s`` in all for their threads."""
        sources = [s.source for s in self.sessions.values() if s.source is not None]
        for source in sources:
            source.stop(0.0)
        deadline = time.monotonic() + timeout_s
        for source in sources:
            source.stop(max(0.0, deadline - time.monotonic()))

    def _error(self, session_id: str, code: str, message: str, **extra: Any) -> None:
        self.inbox.publish(session_id, error_event(session_id, code, message, **extra))

    def _fail(self, session_id: str, code: str, message: str) -> None:
        """Ends a session that cannot run: an error event, then state ``failed``."""
        log.warning("session %s failed: %s", session_id, message)
        self._error(session_id, code, message)
        self.close_local(session_id, write=True)
        self.inbox.update(session_id, state="failed")
