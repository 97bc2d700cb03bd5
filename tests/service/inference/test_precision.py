"""Models in bfloat16 (``VIDREC_DTYPE``) on the CPU: the shipped bundles load in it, clips and live
frames go through it end to end, the answers keep float32 scores, their shape and their GMACs, and
keep the float32 top labels; a bad type is refused at start-up naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from model_core.data import HELDOUT_SEEDS, NUM_CLASSES, ClipSpec, generate_clip, generate_stream
from service.cli import main
from service.inference import ClipClassifier, LiveRunner, ModelCatalog
from service.inference.precision import dtype_name, native_bfloat16, resolve_dtype
from service.settings import Settings

# bfloat16 keeps 8 bits of mantissa: a softmax score moves by a few thousandths on these models
# (at most 0.006 measured over the held-out clips of every shipped bundle).
SCORE_TOLERANCE = 0.02


@pytest.fixture(scope="module")
def shipped() -> dict[str, ModelCatalog]:
    """The shipped bundles, loaded once in float32 and once in bfloat16."""
    return {
        name: ModelCatalog.load(None, device="cpu", dtype=name) for name in ("float32", "bfloat16")
    }


def test_names_resolve_and_auto_keeps_float32_off_cuda() -> None:
    cpu = torch.device("cpu")
    assert resolve_dtype("auto", cpu) is torch.float32
    assert resolve_dtype("bfloat16", cpu) is torch.bfloat16
    assert resolve_dtype("float16", cpu) is torch.float16
    assert resolve_dtype("float32", torch.device("cuda:0")) is torch.float32
    assert not native_bfloat16(cpu)
    assert dtype_name(torch.bfloat16) == "bfloat16"
    with pytest.raises(ValueError, match="unknown dtype 'half'; expected one of auto, float32"):
        resolve_dtype("half", cpu)


def test_the_catalog_loads_every_bundle_in_the_type_with_the_same_costs(
    shipped: dict[str, ModelCatalog],
) -> None:
    full, half = shipped["float32"], shipped["bfloat16"]
    assert full.dtype is torch.float32 and half.dtype is torch.bfloat16
    assert half.names == full.names
    for entry in half:
        assert {p.dtype for p in entry.model.parameters()} == {torch.bfloat16}
        assert entry.gmacs_per_clip == full.get(entry.name).gmacs_per_clip
        assert entry.parameters == full.get(entry.name).parameters
    # GET /v1/models rows are the same in either type.
    assert half.describe() == full.describe()


def test_clips_in_bfloat16_keep_the_float32_top_labels(shipped: dict[str, ModelCatalog]) -> None:
    """Every shipped bundle, one held-out clip of each class: same top label as float32, scores
    float32 summing to 1 and within a few thousandths of float32's."""
    clips = [generate_clip(HELDOUT_SEEDS[i], spec=ClipSpec()).frames for i in range(NUM_CLASSES)]
    full, half = ClipClassifier(shipped["float32"]), ClipClassifier(shipped["bfloat16"])
    for entry in shipped["bfloat16"]:
        probs = half.probabilities(entry, clips)
        assert probs.dtype is torch.float32 and probs.shape == (NUM_CLASSES, NUM_CLASSES)
        torch.testing.assert_close(probs.sum(-1), torch.ones(NUM_CLASSES))
        expected = full.classify(entry.name, clips, top_k=NUM_CLASSES)
        got = half.classify(entry.name, clips, top_k=NUM_CLASSES)
        for want, have in zip(expected, got, strict=True):
            assert have.labels[0][0] == want.labels[0][0], entry.name
            assert have.gmacs == want.gmacs and have.views == want.views
            scores = dict(want.labels)
            for label, score in have.labels:
                assert isinstance(score, float)
                assert score == pytest.approx(scores[label], abs=SCORE_TOLERANCE)


@pytest.mark.parametrize("budget", [None, {"fraction": 0.25}, "recommended"])
def test_live_frames_in_bfloat16(
    shipped: dict[str, ModelCatalog], budget: dict[str, float] | str | None
) -> None:
    """A generated stream through the live runner of the shipped live bundle in both types: the
    bfloat16 caches take half the bytes, the events keep their shape and cost, and the labels
    follow float32's; under the bundle's recommended threshold budget, whose gates sum changes
    in the caches' type, about the same share of tokens is recomputed."""
    stream = generate_stream(3, num_actions=2, spec=ClipSpec(size=112, fps=10.0))
    frames = stream.frames[:24]
    events = {}
    runners = {}
    for name, catalog in shipped.items():
        entry = catalog.live_default
        assert entry is not None
        runner = LiveRunner(entry, capacity=2, stride=4)
        if budget == "recommended":
            assert entry.recommended_budget is not None and "threshold" in entry.recommended_budget
        chosen = entry.recommended_budget if budget == "recommended" else budget
        assert not isinstance(chosen, str)
        runner.open("cam", chosen)
        events[name] = [e for f in frames if (e := runner.step({"cam": f})["cam"]) is not None]
        runners[name] = runner
    # Every cache of a slot but its frame counter is floating point: half the bytes.
    half_bytes = runners["float32"].bytes_per_slot / 2
    assert runners["bfloat16"].bytes_per_slot == pytest.approx(half_bytes, rel=1e-3)
    full, half = events["float32"], events["bfloat16"]
    assert len(half) == len(full) == len(frames) // 4
    agree = 0
    for want, have in zip(full, half, strict=True):
        assert have.frame_index == want.frame_index and have.window == want.window
        assert len(have.labels) == len(want.labels)
        assert all(isinstance(score, float) for _, score in have.labels)
        assert sum(s for _, s in have.labels) <= 1.0 + 1e-4
        # Dense GMACs are counted, not measured: the same in either type.
        assert have.compute.dense_gmacs == pytest.approx(want.compute.dense_gmacs)
        if budget is None:
            assert have.compute.gmacs == pytest.approx(want.compute.gmacs)
        agree += have.labels[0][0] == want.labels[0][0]
    assert agree >= len(full) - 1, f"{agree} of {len(full)} events kept float32's top label"
    spent = {name: runner.totals("cam") for name, runner in runners.items()}
    assert spent["bfloat16"].recompute_fraction == pytest.approx(
        spent["float32"].recompute_fraction, abs=0.03
    )


def test_a_bad_dtype_is_refused_at_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="dtype"):
        Settings(dtype="half")  # type: ignore[arg-type]
    monkeypatch.setenv("VIDREC_DTYPE", "half")
    assert main(["serve", "--port", "0"]) == 2
    assert "VIDREC_DTYPE: Input should be 'auto', 'float32', 'bfloat16' or 'float16'" in (
        capsys.readouterr().err
    )
    # The worker process as `vidrec serve` starts it (settings come before any model loads).
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env.update(VIDREC_DTYPE="bfloat 16", VIDREC_REDIS_URL="redis://127.0.0.1:1/0")
    done = subprocess.run(
        [sys.executable, "-m", "service.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert "vidrec worker: bad settings: VIDREC_DTYPE: Input should be" in done.stderr
