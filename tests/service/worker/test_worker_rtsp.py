"""RTSP sessions: the owner worker reads a real GStreamer RTSP server."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis
from rtsp_fixture import PACKAGES, RtspTestServer, missing_requirements
from worker_support import (
    LIVE_MODEL,
    GatewaySide,
    ThreadWorker,
    events_of,
    labels_of,
    lose_budget,
    wait_for,
    worker_settings,
)

from model_core.data import ClipSpec, generate_stream
from model_core.data.video_io import write_video
from service.ingest import StreamState
from service.keys import Keys
from service.queue import WorkerRegistry
from service.worker.sessions import MISSED_OPEN_GRACE_S


@pytest.fixture
def camera(tmp_path: Path) -> RtspTestServer:
    reason = missing_requirements()
    if reason is not None:
        pytest.fail(f"{reason}. Install the Debian packages {' '.join(PACKAGES)}.")
    stream = generate_stream(4, num_actions=3, spec=ClipSpec(size=96, fps=20.0))
    served = write_video(tmp_path / "cam.mp4", stream.frames[:200], fps=20.0)
    return RtspTestServer({"cam": served}, log_dir=tmp_path)


# Every camera test's worker: reads the loopback camera, 10 fps, labels every 4 frames.
CAMERA = {"allow_private_sources": True, "rtsp_fps": 10.0, "stride": 4}


def wait_labels(client: redis.Redis, keys: Keys, session_id: str, count: int = 2) -> list[dict]:
    """The session's first ``count`` labels events, once they are there (at most 60 s)."""
    return wait_for(
        lambda: (ev := labels_of(events_of(client, keys, session_id))) and len(ev) >= count and ev,
        timeout_s=60,
        what="labels from the camera",
    )


def source_states(events: list[dict]) -> list[str]:
    return [e["state"] for e in events if e["type"] == "source"]


@pytest.mark.integration
def test_an_rtsp_session_reads_the_camera_reports_its_health_and_stops_on_close(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, camera: RtspTestServer
) -> None:
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-rtsp", **CAMERA)
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    camera.start()
    try:
        with ThreadWorker(settings) as tw:
            info = gw.create(LIVE_MODEL, {"fraction": 0.5}, kind="rtsp", source=camera.url("cam"))
            sid = info.session_id
            labels = wait_labels(client, keys, sid)
            assert [e["frame_index"] for e in labels[:2]] == [4, 8]
            assert all(e["compute"]["gmacs"] > 0 and e["latency_ms"] >= 0 for e in labels)
            assert source_states(events_of(client, keys, sid))[:2] == ["connecting", "streaming"]
            session = wait_for(
                lambda: (s := gw.get(sid)) and s.frames_processed >= 8 and s,
                what="the counters",
            )
            assert session.state == "running"
            assert session.source_health is not None
            assert session.source_health["state"] == "streaming"
            assert session.source_health["frames_received"] > 0

            # The camera goes away: the session says so, and comes back with it.
            camera.stop()
            wait_for(
                lambda: "reconnecting" in source_states(events_of(client, keys, sid)),
                timeout_s=30,
                what="a reconnecting event",
            )
            assert (s := gw.get(sid)) is not None and s.state == "reconnecting"
            camera.start()
            wait_for(
                lambda: source_states(events_of(client, keys, sid))[-1] == "streaming",
                timeout_s=60,
                what="streaming again",
            )
            wait_for(lambda: (s := gw.get(sid)) and s.state == "running", what="running again")

            source = tw.worker.sessions.sessions[sid].source
            assert source is not None
            assert gw.close(sid)
            wait_for(lambda: sid not in tw.worker.sessions.sessions, what="the session to stop")
            assert source.reader.wait_for(StreamState.STOPPED, timeout=15)
    finally:
        camera.stop()


def test_a_refused_source_fails_the_session_with_an_error_event(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis
) -> None:
    # Private addresses are refused by default; the gateway checks too, the worker again.
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-refuse")
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings) as tw:
        info = gw.create(LIVE_MODEL, {"fraction": 0.5}, kind="rtsp", source="rtsp://10.1.2.3/cam")
        session = wait_for(
            lambda: (s := gw.get(info.session_id)) and s.state == "failed" and s,
            what="the session to fail",
        )
        assert len(tw.worker.sessions) == 0
    events = events_of(client, keys, info.session_id)
    assert [e["type"] for e in events] == ["error"]
    assert events[0]["code"] == "source_url_forbidden"
    assert "private" in events[0]["message"]
    assert not session.open


@pytest.mark.integration
def test_a_stopped_workers_rtsp_session_moves_and_its_reader_restarts(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, camera: RtspTestServer
) -> None:
    a = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-ra", **CAMERA)
    b = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-rb", **CAMERA)
    keys = Keys(key_prefix)
    gw = GatewaySide(a)
    camera.start()
    try:
        with ThreadWorker(a) as first, ThreadWorker(b) as second:
            info = gw.create(LIVE_MODEL, {"fraction": 0.5}, kind="rtsp", source=camera.url("cam"))
            sid = info.session_id
            assert info.owner == "w-ra"
            wait_for(lambda: labels_of(events_of(client, keys, sid)), timeout_s=60, what="labels")
            first.stop()  # drains and deregisters: the session moves at once
            moved = wait_for(
                lambda: [e for e in events_of(client, keys, sid) if e["type"] == "moved"],
                timeout_s=30,
                what="the session to move",
            )
            assert moved[0]["owner"] == "w-rb" and moved[0]["from"] == "w-ra"
            assert sid in second.worker.sessions.sessions
            later = wait_for(
                lambda: [
                    e
                    for e in labels_of(events_of(client, keys, sid))
                    if e["frame_index"] > moved[0]["frame_index"]
                ],
                timeout_s=60,
                what="labels from the new owner",
            )
            assert later[0]["frame_index"] == moved[0]["frame_index"] + 4
            session = gw.get(sid)
            assert session is not None and session.owner == "w-rb" and session.epoch == 1
            assert session.state == "running"
    finally:
        camera.stop()


@pytest.mark.integration
def test_a_camera_away_for_long_is_retried_until_it_returns_and_streams_again(
    redis_url: str,
    key_prefix: str,
    models_dir: Path,
    client: redis.Redis,
    camera: RtspTestServer,
    record_property: Any,
) -> None:
    # Retries every 0.3 s at most: the outage below spans many more failed attempts than the
    # reader's default limit (10), after which a session used to fail for good.
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-away", rtsp_retry_max_s=0.3, **CAMERA
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    camera.start()
    try:
        with ThreadWorker(settings):
            info = gw.create(LIVE_MODEL, {"fraction": 0.5}, kind="rtsp", source=camera.url("cam"))
            sid = info.session_id
            wait_for(lambda: labels_of(events_of(client, keys, sid)), timeout_s=60, what="labels")
            camera.stop()

            def health() -> dict[str, Any]:
                session = gw.get(sid)
                assert session is not None and session.source_health is not None
                return session.source_health

            away = wait_for(
                lambda: (h := health())["attempts"] >= 15 and h,
                timeout_s=60,
                what="fifteen failed attempts",
            )
            session = gw.get(sid)
            assert session is not None and session.state == "reconnecting" and session.open
            assert away["state"] in ("reconnecting", "connecting")
            assert away["last_error"] is not None
            # Every attempt is in the hash; only the first few became events.
            retries = [
                e
                for e in events_of(client, keys, sid)
                if e["type"] == "source" and e["session_state"] == "reconnecting"
            ]
            assert [e["attempts"] for e in retries] == [1, 2, 3, 4, 5]
            assert all(0 < e["next_retry_s"] <= 0.3 * 1.2 for e in retries)

            last_event = events_of(client, keys, sid)[-1]["event_id"]
            camera.start()
            back = time.monotonic()
            wait_for(
                lambda: (s := gw.get(sid)) and s.state == "running",
                timeout_s=60,
                what="streaming again",
            )
            streaming_after = time.monotonic() - back
            print(f"streaming again {streaming_after:.2f} s after the camera came back")
            record_property("streaming_again_s", round(streaming_after, 3))
            later = wait_for(
                lambda: [
                    e
                    for e in labels_of(events_of(client, keys, sid))
                    if tuple(map(int, e["event_id"].split("-")))
                    > tuple(map(int, last_event.split("-")))
                ],
                timeout_s=60,
                what="labels after the camera's return",
            )
            assert later
            assert health()["attempts"] == 0
    finally:
        camera.stop()


@pytest.mark.integration
def test_an_rtsp_session_whose_open_message_was_lost_is_started_from_its_record(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, camera: RtspTestServer
) -> None:
    """A stalled worker's inbox is trimmed oldest first, and an open message can go with it. A
    live session's next frame opens it anyway; an RTSP session brings no frames, so the worker
    starts it from its record once it has been waiting a while."""
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-missed", **CAMERA)
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    camera.start()
    try:
        with ThreadWorker(settings) as tw:
            # Placed on a worker that only beats (ids sort it first), so the open message goes
            # to an inbox nobody reads; then recorded as the real worker's, opened seconds ago,
            # as if that worker's own open message had been trimmed away.
            WorkerRegistry(client, keys, "w-0-silent").beat(
                {"models": [LIVE_MODEL], "live_models": [LIVE_MODEL], "sessions": 0, "capacity": 4}
            )
            info = gw.create(LIVE_MODEL, {"fraction": 0.5}, kind="rtsp", source=camera.url("cam"))
            sid = info.session_id
            assert info.owner == "w-0-silent"
            created = time.time() - 2 * MISSED_OPEN_GRACE_S
            client.hset(keys.session(sid), mapping={"owner": "w-missed", "created": created})
            labels = wait_labels(client, keys, sid)
            assert [e["frame_index"] for e in labels[:2]] == [4, 8]
            assert sid in tw.worker.sessions.sessions
            assert gw.close(sid)
            wait_for(lambda: sid not in tw.worker.sessions.sessions, what="the session to stop")
    finally:
        camera.stop()


@pytest.mark.integration
def test_an_rtsp_session_whose_budget_message_was_lost_takes_the_recorded_budget(
    redis_url: str,
    key_prefix: str,
    models_dir: Path,
    client: redis.Redis,
    camera: RtspTestServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No frame of an RTSP session passes through the inbox to show a budget change missing;
    the worker compares the record's count with its own at each check. A change that arrives
    is not taken for a lost one."""
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-rtsp-bud", **CAMERA)
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    camera.start()
    try:
        with ThreadWorker(settings) as tw:
            info = gw.create(LIVE_MODEL, {"keep_all": True}, kind="rtsp", source=camera.url("cam"))
            sid = info.session_id
            dense = wait_labels(client, keys, sid)[-1]["compute"]
            assert dense["recompute_fraction"] == pytest.approx(1.0)
            gw.set_budget(sid, {"keep_all": True})  # delivered: number 1
            local = tw.worker.sessions.sessions[sid]
            wait_for(lambda: local.budget_seq == 1, what="the budget message")
            time.sleep(1.0)  # five maintenance checks
            assert "never arrived" not in caplog.text
            lose_budget(client, keys, sid, {"tokens": 4})  # number 2, never delivered
            cheap = wait_for(
                lambda: (
                    (ev := labels_of(events_of(client, keys, sid)))
                    and ev[-1]["compute"]["recompute_fraction"] < 0.5
                    and ev[-1]["compute"]
                ),
                timeout_s=30,
                what="labels at the recorded budget",
            )
            assert local.budget == {"tokens": 4} and local.budget_seq == 2
            assert "budget change 2 never arrived" in caplog.text
            assert gw.close(sid)
    finally:
        camera.stop()
    assert cheap["gmacs"] < 0.8 * dense["gmacs"]
