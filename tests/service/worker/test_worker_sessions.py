"""Live sessions through a real worker (its loop in a thread) on the real queue."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis
from worker_support import (
    LIVE_MODEL,
    GatewaySide,
    ThreadWorker,
    events_of,
    labels_of,
    lose_budget,
    png_bytes,
    wait_for,
    worker_settings,
)

from model_core.checkpoint import update_bundle_training
from model_core.data import ClipSpec, generate_stream
from service import wire
from service.inference import LiveRunner
from service.keys import INBOX_MAXLEN, Keys


@pytest.fixture(scope="module")
def frames() -> np.ndarray:
    """24 frames (112 px) of a generated stream of actions."""
    return generate_stream(5, num_actions=2, spec=ClipSpec(size=112, fps=10.0)).frames[:24]


def wait_labels(
    client: redis.Redis, keys: Keys, session_id: str, count: int, timeout_s: float = 30.0
) -> list[dict[str, Any]]:
    return wait_for(
        lambda: (ev := labels_of(events_of(client, keys, session_id))) and len(ev) >= count and ev,
        timeout_s,
        what=f"{count} labels events",
    )


def in_process_events(
    worker_frames: list[np.ndarray], budget: dict[str, Any], stride: int, runner: LiveRunner
) -> list[Any]:
    runner.open("reference", budget)
    try:
        events = [runner.step({"reference": f})["reference"] for f in worker_frames]
    finally:
        runner.close("reference")
    return [e for e in events if e is not None]


def test_labels_every_stride_frames_as_the_in_process_runner_gives_them(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, frames: np.ndarray
) -> None:
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-live", stride=4, session_backlog=64
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings) as tw:
        info = gw.create(LIVE_MODEL, {"keep_all": True})
        assert info.owner == "w-live"
        gw.send_frames(info.session_id, [png_bytes(f) for f in frames[:12]])
        events = wait_labels(client, keys, info.session_id, 3)
        session = wait_for(
            lambda: (s := gw.get(info.session_id)) and s.frames_processed == 12 and s,
            what="the counters",
        )
        runner = LiveRunner(tw.worker.catalog.get(LIVE_MODEL), 1, 4)
    expected = in_process_events(list(frames[:12]), {"keep_all": True}, 4, runner)

    assert [e["frame_index"] for e in events] == [4, 8, 12]
    assert [e["input_index"] for e in events] == [3, 7, 11]
    for event, reference in zip(events, expected, strict=True):
        assert event["session_id"] == info.session_id and event["model"] == LIVE_MODEL
        assert [row["label"] for row in event["labels"]] == [lb for lb, _ in reference.labels]
        assert [row["score"] for row in event["labels"]] == pytest.approx(
            [score for _, score in reference.labels], abs=1e-5
        )
        compute = event["compute"]
        assert compute["frames"] == 4
        assert compute["gmacs"] == pytest.approx(reference.compute.gmacs)
        assert compute["dense_gmacs"] == pytest.approx(compute["gmacs"])  # keep_all is dense
        assert compute["recompute_fraction"] == pytest.approx(1.0)
        assert event["latency_ms"] >= 0 and event["dropped"] == 0
        # The breakdown of the newest frame's time, as a clip answer has it; the whole
        # event written through service/wire.py.
        timing = wire.build(wire.LabelsEvent, event).timing_ms
        assert timing is not None and timing.total == event["latency_ms"]
        assert timing.decode > 0 and timing.inference > 0 and timing.queue_wait >= 0
        assert timing.queue_wait + timing.decode + timing.inference <= timing.total
    assert session.state == "running" and session.frames_dropped == 0
    assert session.last_event is not None and session.last_event["frame_index"] == 12


@pytest.mark.parametrize("delivered", [True, False], ids=["delivered", "lost"])
def test_a_budget_change_lowers_the_compute_from_the_next_frame(
    redis_url: str,
    key_prefix: str,
    models_dir: Path,
    client: redis.Redis,
    frames: np.ndarray,
    delivered: bool,
) -> None:
    """Sent as a message, or lost on the way (a stalled worker's inbox trimmed past it): the
    frames after it carry the number of budget changes sent before them, so the worker takes
    the recorded budget at the first of them."""
    worker_id = "w-budget" if delivered else "w-lost-budget"
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id=worker_id, stride=4, session_backlog=64
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings):
        info = gw.create(LIVE_MODEL, {"keep_all": True})
        # Until the worker has read the open message, the hash (read at open) already holds a
        # budget set meanwhile; the open message does not carry the first budget.
        wait_for(lambda: (s := gw.get(info.session_id)) and s.state == "running")
        gw.send_frames(info.session_id, [png_bytes(f) for f in frames[:8]])
        if delivered:
            gw.set_budget(info.session_id, {"tokens": 4})
        else:
            wait_labels(client, keys, info.session_id, 2)
            lose_budget(client, keys, info.session_id, {"tokens": 4})
        assert client.hget(keys.session(info.session_id), "budget_seq") == b"1"
        gw.send_frames(info.session_id, [png_bytes(f) for f in frames[8:16]], first_index=8)
        events = wait_labels(client, keys, info.session_id, 4)
    dense, cheap = events[1]["compute"], events[3]["compute"]
    assert [e["frame_index"] for e in events] == [4, 8, 12, 16]
    assert dense["recompute_fraction"] == pytest.approx(1.0)
    # A lost change without the frames' count: the worker kept every token.
    assert cheap["gmacs"] < 0.8 * dense["gmacs"]
    assert cheap["dense_gmacs"] == pytest.approx(dense["dense_gmacs"])
    assert cheap["recompute_fraction"] < 0.5


def test_a_bad_budget_falls_back_to_the_one_the_bundle_recommends(
    redis_url: str,
    key_prefix: str,
    models_dir: Path,
    client: redis.Redis,
    frames: np.ndarray,
    tmp_path: Path,
) -> None:
    recommending = tmp_path / "models"
    shutil.copytree(models_dir, recommending)
    bundle = recommending / f"{LIVE_MODEL}.safetensors"
    update_bundle_training(bundle, {"live_budget": {"budget": {"keep_all": True}}})
    settings = worker_settings(redis_url, key_prefix, recommending, worker_id="w-fallback")
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings):
        # Written past the gateway's checks (an older gateway, a hand-made record).
        info = gw.create(LIVE_MODEL, {"fraction": 7})
        gw.send_frames(info.session_id, [png_bytes(f) for f in frames[:8]])
        events = wait_labels(client, keys, info.session_id, 2)
        errors = [e for e in events_of(client, keys, info.session_id) if e["type"] == "error"]
    assert [e["code"] for e in errors] == ["invalid_budget"]
    assert "the default budget is used" in errors[0]["message"]
    # The bundle's recommendation (every token), not the quarter a bare default would take.
    assert [e["compute"]["recompute_fraction"] for e in events] == pytest.approx([1.0, 1.0])


def test_a_full_backlog_drops_the_oldest_frames_and_counts_them(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, frames: np.ndarray
) -> None:
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-backlog", session_backlog=2
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings):
        info = gw.create(LIVE_MODEL, {"fraction": 0.5}, stride=1)
        wait_for(lambda: (s := gw.get(info.session_id)) and s.state == "running")
        # 20 frames arrive at once (one transaction), faster than any worker steps.
        with client.pipeline(transaction=True) as pipe:
            for i in range(20):
                message = {
                    "type": "frame",
                    "session": info.session_id,
                    "data": png_bytes(frames[i]),
                    "index": i,
                    "received": repr(time.time()),
                }
                pipe.xadd(keys.inbox("w-backlog"), message, maxlen=INBOX_MAXLEN)
            pipe.execute()
        events = wait_labels(client, keys, info.session_id, 2)
        session = wait_for(
            lambda: (s := gw.get(info.session_id)) and s.frames_processed == 2 and s,
            what="the counters",
        )
        metrics = wait_for(
            lambda: (
                b'reason="backlog"} 18.0'
                in (m := client.get(keys.worker_metrics("w-backlog")) or b"")
                and m
            ),
            what="the drops in the metrics",
        )
    assert [e["input_index"] for e in events] == [18, 19]  # the newest frames won
    assert [e["frame_index"] for e in events] == [1, 2]  # the session's own stride: 1
    assert [e["dropped"] for e in events] == [18, 18]
    assert session.frames_dropped == 18
    assert b'vidrec_frames_dropped_total{reason="backlog"} 18.0' in metrics


def test_a_bad_frame_is_an_error_event_and_the_stream_goes_on(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, frames: np.ndarray
) -> None:
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-badframe", session_backlog=64
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings):
        info = gw.create(LIVE_MODEL, {"fraction": 0.5}, stride=2)
        good = [png_bytes(f) for f in frames[:4]]
        gw.send_frames(info.session_id, [good[0], b"GIF89a not an accepted image", *good[1:]])
        events = wait_for(
            lambda: (
                (ev := events_of(client, keys, info.session_id)) and len(labels_of(ev)) >= 2 and ev
            ),
            what="labels after the bad frame",
        )
    errors = [e for e in events if e["type"] == "error"]
    assert len(errors) == 1
    assert errors[0]["code"] == "unsupported_image" and errors[0]["input_index"] == 1
    assert [e["frame_index"] for e in labels_of(events)] == [2, 4]
    assert [e["input_index"] for e in labels_of(events)] == [2, 4]


def test_close_frees_the_slot_and_foreign_frames_are_ignored(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis, frames: np.ndarray
) -> None:
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-close", session_capacity=1
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings) as tw:
        first = gw.create(LIVE_MODEL, {"fraction": 0.5})
        wait_for(lambda: len(tw.worker.sessions) == 1, what="the session to open")
        assert gw.close(first.session_id)
        wait_for(lambda: len(tw.worker.sessions) == 0, what="the session to stop")
        runner = tw.worker.sessions.runner.runners[(LIVE_MODEL, 4)]
        assert len(runner) == 0
        # A frame for a session this worker does not own is dropped, not run.
        client.xadd(
            keys.inbox("w-close"),
            {"type": "frame", "session": "someone-elses", "data": png_bytes(frames[0])},
        )
        # The one slot is free again for the next session.
        second = gw.create(LIVE_MODEL, {"fraction": 0.5})
        gw.send_frames(second.session_id, [png_bytes(f) for f in frames[:4]])
        wait_labels(client, keys, second.session_id, 1)
        metrics = wait_for(
            lambda: b"no_session" in (m := client.get(keys.worker_metrics("w-close")) or b"") and m,
            what="the foreign frame in the metrics",
        )
    assert b'vidrec_frames_dropped_total{reason="no_session"} 1.0' in metrics
    closed = client.hgetall(keys.session(first.session_id))
    assert closed[b"state"] == b"closed"
