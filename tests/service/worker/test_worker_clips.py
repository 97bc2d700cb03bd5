"""Clip jobs through a real worker (its loop in a thread) on the real queue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis
from worker_support import (
    CLIP_MODEL,
    LIVE_MODEL,
    GatewaySide,
    ThreadWorker,
    mp4_bytes,
    wait_for,
    worker_settings,
)

from service import limits, wire
from service.inference import ClipClassifier
from service.ingest import Sampling, decode_clip
from service.keys import Keys


def test_a_clip_is_answered_as_the_in_process_classifier_answers_it(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis
) -> None:
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-clips")
    gw = GatewaySide(settings)
    data = mp4_bytes(3, frames=24)
    with ThreadWorker(settings) as tw:
        job_id = gw.submit(data, CLIP_MODEL, {"top_k": 3, "clips": 2, "crops": 1})
        answer = gw.wait(job_id, 60)
    assert answer is not None and "error" not in answer, answer

    catalog = tw.worker.catalog
    entry = catalog.get(CLIP_MODEL)
    decoded = decode_clip(
        data,
        Sampling(num_frames=entry.frames, num_clips=2),
        settings.clip_limits(),
        short_side=entry.config.preprocessing.resize_size,
    )
    expected = ClipClassifier(catalog).classify(CLIP_MODEL, [decoded.views], 3)[0]

    assert answer["job_id"] == job_id
    assert answer["model"] == CLIP_MODEL
    assert [row["label"] for row in answer["labels"]] == [label for label, _ in expected.labels]
    assert [row["score"] for row in answer["labels"]] == pytest.approx(
        [score for _, score in expected.labels], abs=1e-6
    )
    sampled = answer["sampled"]
    assert sampled["frames"] == 8 and sampled["views"] == 2 and sampled["clips"] == 2
    assert sampled["indices"] == decoded.frame_indices.tolist()
    assert len(sampled["timestamps_s"]) == 2 and len(sampled["timestamps_s"][0]) == 8
    assert sampled["clip"]["num_frames"] == 24 and sampled["clip"]["codec"] == "h264"
    timing = answer["timing_ms"]
    assert set(timing) == {"queue_wait", "decode", "inference", "total"}
    assert timing["decode"] > 0 and timing["inference"] > 0
    assert timing["total"] >= timing["queue_wait"] + timing["inference"]
    assert answer["compute"] == {"gmacs": pytest.approx(expected.gmacs), "frames": 16}
    assert answer["worker"] == "w-clips"
    # Written through the contract: every field named by service/wire.py, the frame rate as fps.
    assert wire.build(wire.ClipAnswer, answer).sampled.clip.fps == pytest.approx(10.0)  # type: ignore[union-attr]
    assert "avg_fps" not in sampled["clip"]

    job = client.hgetall(Keys(key_prefix).job(job_id))
    assert job[b"state"] == b"done" and job[b"worker"] == b"w-clips"
    assert client.xlen(Keys(key_prefix).clips) == 0  # acked and deleted


def test_bad_jobs_fail_alone_and_the_worker_keeps_serving(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis
) -> None:
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-bad")
    gw = GatewaySide(settings)
    good = mp4_bytes(1)
    # Queued before the worker starts, so its first read takes them as one batch.
    jobs = {
        "good1": gw.submit(good, CLIP_MODEL),
        "not_video": gw.submit(b"this is not a video at all", CLIP_MODEL),
        "truncated": gw.submit(good[: len(good) // 2], CLIP_MODEL),
        "bad_crops": gw.submit(good, CLIP_MODEL, {"crops": 2}),
        # Past the gateway's bound: the worker holds the same one (service/limits.py).
        "many_clips": gw.submit(good, CLIP_MODEL, {"clips": limits.MAX_CLIPS + 1}),
        "no_model": gw.submit(good, "no_such_model"),
        "good2": gw.submit(mp4_bytes(2), LIVE_MODEL, {"top_k": 2}),
    }
    with ThreadWorker(settings) as tw:
        answers = {name: gw.wait(job_id, 60) for name, job_id in jobs.items()}
        # Still serving after the failures.
        later = gw.wait(gw.submit(good, CLIP_MODEL), 60)
        metrics_key = Keys(key_prefix).worker_metrics("w-bad")
        done = f'vidrec_clip_jobs_total{{model="{CLIP_MODEL}",status="done"}} 2.0'
        text = wait_for(
            lambda: t if done in (t := (client.get(metrics_key) or b"").decode()) else "",
            what="a heartbeat with the metrics of every job",
        )
    assert tw.exit_code == 0

    def error(name: str) -> dict:
        answer = answers[name]
        assert answer is not None and "error" in answer, answer
        return answer["error"]

    assert answers["good1"] is not None and answers["good1"]["model"] == CLIP_MODEL
    assert answers["good2"] is not None and len(answers["good2"]["labels"]) == 2
    assert later is not None and later["labels"]
    assert error("not_video")["code"] == "not_a_video"
    assert error("not_video")["http_status"] == 415
    assert error("truncated")["http_status"] in (415, 422)
    assert error("bad_crops")["code"] == "invalid_request"
    assert error("bad_crops")["http_status"] == 422
    assert error("many_clips")["code"] == "invalid_request"
    assert (
        f"clips must be an integer from 1 to {limits.MAX_CLIPS}" in error("many_clips")["message"]
    )
    assert error("no_model")["code"] == "unknown_model"
    assert error("no_model")["http_status"] == 404
    assert "no_such_model" in error("no_model")["message"]
    for name in ("not_video", "truncated", "bad_crops", "many_clips", "no_model"):
        state = client.hget(Keys(key_prefix).job(jobs[name]), "state")
        assert state == b"failed", name
    assert f'vidrec_clip_jobs_total{{model="{CLIP_MODEL}",status="rejected"}} 4.0' in text


def test_a_job_for_a_model_held_elsewhere_goes_to_that_worker(
    redis_url: str, key_prefix: str, models_dir: Path
) -> None:
    only_live = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-live-only", models=[LIVE_MODEL]
    )
    only_clip = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-clip-only", models=[CLIP_MODEL]
    )
    gw = GatewaySide(only_live)
    data = mp4_bytes(4)
    with ThreadWorker(only_live), ThreadWorker(only_clip):
        jobs = [gw.submit(data, CLIP_MODEL) for _ in range(4)]
        answers = [gw.wait(job_id, 60) for job_id in jobs]
    assert all(a is not None and a.get("worker") == "w-clip-only" for a in answers), answers


def test_the_heartbeat_advertises_models_and_sessions_and_goes_at_stop(
    redis_url: str, key_prefix: str, models_dir: Path, client: redis.Redis
) -> None:
    settings = worker_settings(
        redis_url, key_prefix, models_dir, worker_id="w-beat", session_capacity=3
    )
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    with ThreadWorker(settings) as tw:
        gw.create(LIVE_MODEL, {"fraction": 0.5})
        fields = wait_for(
            lambda: (
                (h := client.hgetall(keys.worker("w-beat"))) and h.get(b"sessions") == b"1" and h
            ),
            what="a heartbeat counting the session",
        )
        assert json.loads(fields[b"models"]) == sorted([CLIP_MODEL, LIVE_MODEL])
        assert json.loads(fields[b"live_models"]) == [LIVE_MODEL]
        rows = json.loads(fields[b"catalog"])
        assert [row["name"] for row in rows] == sorted([CLIP_MODEL, LIVE_MODEL])
        assert all(row["frames"] == 8 and row["gmacs_per_clip"] > 0 for row in rows)
        assert fields[b"capacity"] == b"3" and fields[b"state"] == b"running"
        assert fields[b"device"] == b"cpu"
        assert client.pttl(keys.worker("w-beat")) <= 1000
        assert b"vidrec_inference_seconds" in (client.get(keys.worker_metrics("w-beat")) or b"")
        tw.stop()
        assert not client.exists(keys.worker("w-beat"))
        assert not client.exists(keys.worker_metrics("w-beat"))
        assert b"w-beat" not in client.smembers(keys.workers)
