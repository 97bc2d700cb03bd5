"""Clip jobs and a live session on one worker: the session keeps getting labels while clips run."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest
import redis
from worker_support import (
    CLIP_MODEL,
    LIVE_MODEL,
    FrameSender,
    GatewaySide,
    ThreadWorker,
    clip_frames,
    events_of,
    labels_of,
    mp4_bytes,
    png_bytes,
    wait_for,
    worker_settings,
)

from service.keys import Keys
from service.queue._codec import as_float, text_hash

# What the issue found starving every live stream: many views per job.
HEAVY = {"clips": 10, "crops": 3}
JOBS = 6
FPS = 10.0


@pytest.mark.integration
def test_labels_keep_coming_while_heavy_clip_jobs_run(
    redis_url: str,
    key_prefix: str,
    models_dir: Path,
    client: redis.Redis,
    record_property: Any,
) -> None:
    settings = worker_settings(redis_url, key_prefix, models_dir, worker_id="w-mixed", stride=2)
    keys = Keys(key_prefix)
    gw = GatewaySide(settings)
    frames = [png_bytes(f) for f in clip_frames(3, 8, 112)]
    data = mp4_bytes(4, frames=24)
    with ThreadWorker(settings):
        session = gw.create(LIVE_MODEL, {"fraction": 0.5})
        sid = session.session_id
        with FrameSender(gw, sid, frames, fps=FPS):
            wait_for(lambda: len(labels_of(events_of(client, keys, sid))) >= 2, what="labels")
            jobs = [gw.submit(data, CLIP_MODEL, HEAVY) for _ in range(JOBS)]
            answers = [gw.wait(job_id, 120) for job_id in jobs]
        assert all(a is not None and a.get("labels") for a in answers), answers

    # The span during which clip work was in hand: from the first job taken to the last answer.
    records = [text_hash(client.hgetall(keys.job(job_id))) for job_id in jobs]
    start = min(as_float(r.get("started")) for r in records)
    end = max(as_float(r.get("finished")) for r in records)
    times = [
        int(e["event_id"].split("-")[0]) / 1000 for e in labels_of(events_of(client, keys, sid))
    ]
    inside = [t for t in times if start <= t <= end]
    edges = [start, *inside, end]
    gap = max(b - a for a, b in itertools.pairwise(edges))
    print(
        f"{JOBS} jobs of {HEAVY}: {end - start:.2f} s of clip work, {len(inside)} labels meanwhile"
        f" (one per {2 / FPS:.1f} s sent), longest gap {gap:.2f} s"
    )
    record_property("clip_span_s", round(end - start, 3))
    record_property("labels_during_clips", len(inside))
    record_property("longest_labels_gap_s", round(gap, 3))
    assert len(inside) >= 2
    # A label is due every 0.2 s; one unit of clip work is about 35 ms. Generous for loaded
    # cores, and well under the clip work's span (the whole span was one gap before).
    assert gap < 1.5
