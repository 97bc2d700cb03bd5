"""The wire models parse what the service sends, leniently. (That they describe every field a
running server sends is checked against one in tests/vidrec/test_client.py.)"""

from __future__ import annotations

import subprocess
import sys

import pytest
from pydantic import ValidationError

from service.wire import (
    ClipAnswer,
    ErrorBody,
    ErrorEvent,
    JobView,
    LabelsEvent,
    ModelList,
    MovedEvent,
    UnknownEvent,
    build,
    parse_event,
)

ANSWER = {
    "job_id": "j1",
    "model": "tokshift_tiny_motion112",
    "labels": [{"label": "shrink", "score": 0.13}],
    "sampled": {
        "frames": 8,
        "views": 1,
        "clips": 1,
        "crops": 1,
        "indices": [[1, 3]],
        "timestamps_s": [[0.1, 0.3]],
        "frames_decoded": 16,
        "clip": {
            "container": "mov,mp4",
            "codec": "h264",
            "width": 128,
            "height": 128,
            "rotation": 0,
            "num_frames": 16,
            "duration_s": 1.6,
            "fps": 10.0,
        },
    },
    "timing_ms": {"queue_wait": 2.7, "decode": 30.7, "inference": 25.9, "total": 59.6},
    "compute": {"gmacs": 0.427, "frames": 8},
    "worker": "vm-1",
    "deliveries": 1,
}


def test_an_answer_with_new_fields_still_parses_and_keeps_them() -> None:
    answer = ClipAnswer.model_validate({**ANSWER, "cost_usd": 0.01})
    assert answer.labels[0].label == "shrink" and answer.timing_ms.total == 59.6
    assert answer.sampled is not None and answer.sampled.clip.fps == 10.0
    assert answer.model_extra == {"cost_usd": 0.01}


def test_a_missing_required_field_is_refused() -> None:
    with pytest.raises(ValidationError, match="timing_ms"):
        ClipAnswer.model_validate({k: v for k, v in ANSWER.items() if k != "timing_ms"})


def test_job_view_reads_the_gateways_probe_frame_rate() -> None:
    probe = {**ANSWER["sampled"]["clip"]}
    probe["avg_fps"] = probe.pop("fps")
    job = JobView.model_validate(
        {
            "job_id": "j1",
            "status": "done",
            "model": "m",
            "params": {"top_k": 5, "probe": probe},
            "created": 1.0,
            "result": ANSWER,
        }
    )
    assert job.result is not None and job.result.compute.frames == 8
    failed = JobView.model_validate(
        {
            "job_id": "j2",
            "status": "failed",
            "model": "m",
            "created": 1.0,
            "error": {"code": "truncated", "message": "cut short", "http_status": 422},
        }
    )
    assert failed.error is not None and failed.error.http_status == 422


def test_events_parse_by_type_and_unknown_types_survive() -> None:
    labels = parse_event(
        {
            "type": "labels",
            "session_id": "s",
            "frame_index": 8,
            "labels": [{"label": "grow", "score": 0.5}],
            "compute": {"gmacs": 1.0, "dense_gmacs": 2.0, "recompute_fraction": 0.5, "frames": 4},
        }
    )
    assert isinstance(labels, LabelsEvent) and labels.compute.dense_gmacs == 2.0
    moved = parse_event({"type": "moved", "owner": "w2", "from": "w1", "epoch": 1})
    assert isinstance(moved, MovedEvent) and moved.from_ == "w1"
    novel = parse_event({"type": "paused", "session_id": "s", "idle_s": 120})
    assert isinstance(novel, UnknownEvent) and novel.type == "paused"
    assert novel.model_extra == {"idle_s": 120}
    with pytest.raises(ValidationError):
        parse_event({"type": "labels", "session_id": "s"})


def test_errors_and_models() -> None:
    body = ErrorBody.model_validate(
        {"error": {"code": "unknown_model", "message": "no", "models": ["a"], "request_id": "r"}}
    )
    assert body.error.request_id == "r" and body.error.models == ["a"]
    assert body.error.model_extra == {}
    newer = ErrorBody.model_validate({"error": {"code": "c", "message": "m", "hint": "h"}})
    assert newer.error.model_extra == {"hint": "h"}
    listing = ModelList.model_validate({"models": [{"name": "m", "serving": {"clip": ["w"]}}]})
    assert listing.models[0].serving.clip == ["w"] and listing.defaults.clip is None


def test_the_module_imports_without_torch() -> None:
    code = "import sys, service.wire; print(sorted({'torch', 'model_core'} & set(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_build_refuses_what_the_lenient_parse_lets_through() -> None:
    assert build(ClipAnswer, ANSWER).wire() == ANSWER  # the answer as given, field for field
    with pytest.raises(ValueError, match=r"sampled\.clip\.avg_fps"):
        clip = {**ANSWER["sampled"]["clip"], "avg_fps": 10.0}  # a second name for one fact
        build(ClipAnswer, {**ANSWER, "sampled": {**ANSWER["sampled"], "clip": clip}})
    with pytest.raises(ValueError, match="cost_usd"):
        build(ClipAnswer, {**ANSWER, "cost_usd": 0.01})


def test_events_are_written_with_their_type_and_wire_names() -> None:
    moved = build(MovedEvent, {"type": "moved", "session_id": "s", "owner": "w2", "from": "w1"})
    assert moved.wire() == {"type": "moved", "session_id": "s", "owner": "w2", "from": "w1"}
    assert ErrorEvent(code="c", message="m").wire() == {
        "type": "error",
        "code": "c",
        "message": "m",
    }
