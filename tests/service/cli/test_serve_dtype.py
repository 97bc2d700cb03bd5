"""A worker process started with ``VIDREC_DTYPE=bfloat16`` (by ``vidrec serve``, shipped bundles)
answers held-out clips with the top labels the in-process float32 classifier gives them."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from serve_support import ServeProcess, serve_env  # noqa: E402

from model_core.data import HELDOUT_SEEDS, ClipSpec, generate_clip  # noqa: E402
from model_core.data.video_io import write_video  # noqa: E402
from service.inference import ClipClassifier, ModelCatalog  # noqa: E402
from service.ingest import Sampling, decode_clip  # noqa: E402

pytestmark = pytest.mark.integration

# The shipped clip default and live default: enough for a worker, quicker to load than all.
MODELS = "tokshift_tiny_motion112,factorized_causal_tiny_motion112"
CLIP_MODEL = "tokshift_tiny_motion112"
SEEDS = HELDOUT_SEEDS[:3]


def test_a_bfloat16_worker_answers_with_the_float32_top_label(tmp_path: Path) -> None:
    catalog = ModelCatalog.load(None, [CLIP_MODEL], device="cpu", dtype="float32")
    entry = catalog.get(CLIP_MODEL)
    sampling = Sampling(num_frames=entry.frames, num_clips=1, num_crops=1)
    uploads: list[tuple[bytes, list[tuple[str, float]]]] = []
    for seed in SEEDS:
        clip = generate_clip(seed, spec=ClipSpec())
        data = write_video(tmp_path / f"{seed}.mp4", clip.frames, fps=10.0).read_bytes()
        decoded = decode_clip(data, sampling, short_side=entry.config.preprocessing.resize_size)
        (answer,) = ClipClassifier(catalog).classify(CLIP_MODEL, [decoded.views], top_k=3)
        uploads.append((data, answer.labels))

    server = ServeProcess(serve_env(None, dtype="bfloat16", models=MODELS))
    try:
        server.wait_ready()
        server.wait_for(r"worker \S+: models .* on cpu in bfloat16, torch threads: 1")
        assert "VIDREC_DTYPE=bfloat16" in server.output
        with httpx.Client(base_url=server.url, timeout=120) as http:
            for data, expected in uploads:
                reply = http.post(
                    "/v1/clips",
                    files={"file": ("clip.mp4", data, "video/mp4")},
                    data={"model": CLIP_MODEL, "top_k": "3"},
                )
                assert reply.status_code == 200, reply.text
                labels = reply.json()["labels"]
                assert labels[0]["label"] == expected[0][0]
                assert labels[0]["score"] == pytest.approx(expected[0][1], abs=0.02)
                assert reply.json()["compute"]["gmacs"] == pytest.approx(entry.gmacs_per_clip)
    finally:
        assert server.stop() == 0, server.output
