"""The demo bundles shipped in model_core/zoo: they load, they recognise fresh held-out clips as
well as their docs say, and they answer the same from generated frames as from an MP4."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from model_core import load_bundle
from model_core.checkpoint import read_bundle_config
from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, NUM_CLASSES, ClipSpec, generate_clip
from model_core.data.video_io import read_video, write_video
from model_core.preprocess import preprocess_frames
from model_core.training import evaluate
from model_core.zoo import DEFAULT_CLIP_MODEL, DEFAULT_LIVE_MODEL, DEMO_MODELS, list_bundles

SHIPPED = list_bundles()
# 19 clips of each class, from an offset no training run evaluates on (they use offset 0).
FRESH_CLIPS = 19 * NUM_CLASSES
FRESH_OFFSET = 1000 * NUM_CLASSES
MAX_BYTES = 10 * 2**20
# vit_avg averages per-frame answers, so it cannot tell a clip from the same clip reversed: it is
# shipped as the baseline that fails the order-dependent pairs, and holds no accuracy bar.
BASELINE = "vit_avg_tiny_motion112"
TEMPORAL_BAR = 0.95


def test_the_defaults_are_shipped_and_every_shipped_bundle_is_a_demo_model() -> None:
    assert DEFAULT_CLIP_MODEL in SHIPPED and DEFAULT_LIVE_MODEL in SHIPPED
    assert set(SHIPPED) <= set(DEMO_MODELS)


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_bundle_is_small_and_describes_itself(name: str) -> None:
    path = SHIPPED[name]
    assert path.stat().st_size <= MAX_BYTES
    config, training = read_bundle_config(path)
    registry_name, causal = DEMO_MODELS[name]
    assert registry_name.startswith(config.family + "_vit_tiny")
    assert config.causal == causal
    assert (config.img_size, config.num_frames) == (112, 8)
    assert tuple(config.label_names) == CLASS_NAMES
    assert training is not None and training["command"].startswith("vidrec train")
    assert training["heldout"]["clips"] >= 220


def _bar(name: str) -> float:
    """What the bundle must score on the fresh clips: what its own training run measured
    (docs/MODELS.md shows that figure), less twice the sampling noise of the difference between
    two top-1 figures on that many clips each (both binomial, ~4 points at 60% on 440 and 209
    clips, so a bundle that really has the recorded accuracy passes 98% of seed draws); and for
    temporal models that recorded the issue's bar, that bar less 2 points."""
    _, training = read_bundle_config(SHIPPED[name])
    assert training is not None
    recorded = float(training["heldout"]["top1"])
    clips = int(training["heldout"]["clips"])
    noise = math.sqrt(recorded * (1 - recorded) * (1 / clips + 1 / FRESH_CLIPS))
    bar = recorded - 2 * noise
    if name != BASELINE and recorded >= TEMPORAL_BAR:
        bar = max(bar, TEMPORAL_BAR - 0.02)
    return bar


@pytest.mark.parametrize("name", sorted(SHIPPED))
def test_bundle_recognises_fresh_heldout_clips(name: str) -> None:
    torch.manual_seed(0)
    model = load_bundle(SHIPPED[name])
    report = evaluate(model, FRESH_CLIPS, offset=FRESH_OFFSET, batch_size=19)
    assert report.clips == FRESH_CLIPS
    assert report.top1 >= _bar(name), report
    if name == BASELINE:
        # The frame average is blind to order: some reversed pair is confused about half the time.
        assert max(p.swap_rate for p in report.pairs) > 0.25, report.pairs


# Every temporal bundle, those without an H.264 stage of their own too (docs/MODELS.md).
@pytest.mark.parametrize("name", sorted(set(SHIPPED) - {BASELINE}))
def test_a_clip_is_labelled_alike_from_frames_and_from_an_mp4(name: str, tmp_path: Path) -> None:
    model = load_bundle(SHIPPED[name])
    pre = model.config.preprocessing
    agreed = 0
    for i in range(NUM_CLASSES):
        clip = generate_clip(HELDOUT_SEEDS[FRESH_OFFSET + FRESH_CLIPS + i], spec=ClipSpec())
        decoded = read_video(write_video(tmp_path / f"{i}.mp4", clip))
        assert decoded.shape == clip.frames.shape
        with torch.no_grad():
            raw = model(preprocess_frames(torch.from_numpy(clip.frames), pre)[None]).softmax(-1)
            mp4 = model(preprocess_frames(torch.from_numpy(decoded), pre)[None]).softmax(-1)
        # Scores stay close; the label is the same unless the model is torn between two classes
        # (then the codec's small changes may tip it either way).
        assert float((raw - mp4).abs().max()) < 0.1, (clip.name, raw, mp4)
        top2 = raw[0].topk(2).values
        if float(top2[0] - top2[1]) > 0.05:
            assert raw.argmax() == mp4.argmax(), (clip.name, raw, mp4)
            agreed += 1
        assert np.abs(decoded.astype(int) - clip.frames).mean() < 6
    assert agreed >= NUM_CLASSES // 2
