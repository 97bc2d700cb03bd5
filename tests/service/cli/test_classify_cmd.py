"""``vidrec classify`` on real MP4 files with tiny bundles from a ``--models-dir``."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# The bundle helper lives beside the inference tests (--import-mode=importlib keeps test
# directories off sys.path).
_INFERENCE = str(Path(__file__).resolve().parent.parent / "inference")
if _INFERENCE not in sys.path:
    sys.path.insert(0, _INFERENCE)

from inference_bundles import AVG_MODEL, CLIP_MODEL, write_bundles  # noqa: E402

from model_core.data import CLASS_NAMES, ClipSpec, generate_clip  # noqa: E402
from model_core.data.video_io import write_video  # noqa: E402
from service.cli import main  # noqa: E402
from service.inference import ClipClassifier, ModelCatalog  # noqa: E402
from service.ingest import Sampling, decode_clip  # noqa: E402

VIDREC = shutil.which("vidrec") or str(Path(sys.executable).parent / "vidrec")


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("classify")
    write_bundles(root / "models")
    out = {"models": root / "models"}
    for seed in (1, 2):
        out[f"clip{seed}"] = write_video(
            root / f"clip{seed}.mp4", generate_clip(seed, spec=ClipSpec(frames=16, size=96))
        )
    out["bad"] = root / "bad.mp4"
    out["bad"].write_bytes(b"this is not a video")
    return out


def test_table_answers_good_files_and_reports_bad_ones(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    missing = files["models"].parent / "missing.mp4"
    argv = [str(files["clip1"]), str(files["bad"]), str(missing), str(files["clip2"])]
    status = main(["classify", *argv, "--models-dir", str(files["models"]), "--device", "cpu"])
    out, err = capsys.readouterr()
    assert status == 1
    lines = out.splitlines()
    assert lines[0].split() == ["file", "label", "score", "decode", "ms", "infer", "ms", "GMACs"]
    rows = {line.split()[0]: line.split() for line in lines[2:]}
    assert list(rows) == argv
    for good in (files["clip1"], files["clip2"]):
        _, label, score, decode_ms, infer_ms, gmacs = rows[str(good)]
        assert label in CLASS_NAMES
        assert 0 < float(score) <= 1 and float(decode_ms) > 0 and float(infer_ms) > 0
        assert float(gmacs) > 0
    assert rows[str(files["bad"])][1:] == ["(error:", "not_a_video)"]
    assert rows[str(missing)][1:] == ["(error:", "unreadable)"]
    assert f"{files['bad']}: the upload is not a video file" in err
    assert f"{missing}: no file at" in err


def test_json_matches_the_in_process_classifier(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["classify", str(files["clip1"]), "--models-dir", str(files["models"]), "--json"]
    status = main([*argv, "--clips", "2", "--crops", "3", "--top-k", "3", "--device", "cpu"])
    assert status == 0
    (result,) = json.loads(capsys.readouterr().out)
    assert result["model"] == CLIP_MODEL  # the zoo's clip default
    assert len(result["labels"]) == 3
    assert result["sampled"]["views"] == 6 and len(result["sampled"]["frame_indices"]) == 2
    assert result["compute"]["frames"] == 48
    assert result["clip"]["frames"] == 16 and result["clip"]["width"] == 96
    assert result["timing_ms"]["decode"] > 0 and result["timing_ms"]["inference"] > 0

    catalog = ModelCatalog.load(files["models"], [CLIP_MODEL], device="cpu")
    entry = catalog.get(CLIP_MODEL)
    assert result["compute"]["gmacs"] == pytest.approx(6 * entry.gmacs_per_clip)
    clip = decode_clip(
        files["clip1"],
        Sampling(num_frames=8, num_clips=2, num_crops=3),
        short_side=entry.config.preprocessing.resize_size,
    )
    (answer,) = ClipClassifier(catalog).classify(CLIP_MODEL, [clip.views], top_k=3)
    assert [row["label"] for row in result["labels"]] == [label for label, _ in answer.labels]
    assert [row["score"] for row in result["labels"]] == pytest.approx(
        [score for _, score in answer.labels], abs=1e-6
    )


def test_dtype_option_runs_the_model_in_that_type(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """``--dtype bfloat16`` gives the scores of a bfloat16 catalog, not float32's."""
    argv = ["classify", str(files["clip1"]), "--models-dir", str(files["models"]), "--json"]
    assert main([*argv, "--top-k", "3", "--device", "cpu", "--dtype", "bfloat16"]) == 0
    (result,) = json.loads(capsys.readouterr().out)
    got = [row["score"] for row in result["labels"]]
    answers = {}
    for dtype in ("bfloat16", "float32"):
        catalog = ModelCatalog.load(files["models"], [CLIP_MODEL], device="cpu", dtype=dtype)
        short_side = catalog.get(CLIP_MODEL).config.preprocessing.resize_size
        clip = decode_clip(files["clip1"], Sampling(num_frames=8), short_side=short_side)
        (answers[dtype],) = ClipClassifier(catalog).classify(CLIP_MODEL, [clip.views], top_k=3)
    assert got == pytest.approx([score for _, score in answers["bfloat16"].labels], abs=1e-6)
    assert got != pytest.approx([score for _, score in answers["float32"].labels], abs=1e-6)
    with pytest.raises(SystemExit):
        main([*argv, "--dtype", "half"])
    assert "invalid choice: 'half'" in capsys.readouterr().err


def test_model_option_and_unknown_model(
    files: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["classify", str(files["clip2"]), "--models-dir", str(files["models"]), "--json"]
    assert main([*base, "--model", AVG_MODEL]) == 0
    assert json.loads(capsys.readouterr().out)[0]["model"] == AVG_MODEL
    assert main([*base, "--model", "resnet50"]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'resnet50'" in err and CLIP_MODEL in err


def test_bad_arguments_and_model_dirs(
    files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    clip = str(files["clip1"])
    assert main(["classify", clip, "--models-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "no model bundles" in err and "VIDREC_MODELS_DIR (or --models-dir)" in err
    assert main(["classify", clip, "--models-dir", str(files["models"]), "--top-k", "0"]) == 2
    assert "--top-k must be at least 1" in capsys.readouterr().err
    assert main(["classify", clip, "--models-dir", str(files["models"]), "--clips", "0"]) == 2
    assert "--clips must be at least 1" in capsys.readouterr().err


def test_the_console_script(files: dict[str, Path]) -> None:
    result = subprocess.run(
        [VIDREC, "classify", str(files["clip1"]), "--models-dir", str(files["models"]), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["file"] == str(files["clip1"])


def test_models_dir_defaults_to_vidrec_models_dir(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Like ``vidrec serve``, the in-process commands take the bundles from VIDREC_MODELS_DIR."""
    monkeypatch.setenv("VIDREC_MODELS_DIR", str(files["models"]))
    assert main(["classify", str(files["clip1"]), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["model"] == CLIP_MODEL
    # --models-dir still wins over the variable
    monkeypatch.setenv("VIDREC_MODELS_DIR", str(files["models"].parent / "nowhere"))
    assert main(["classify", str(files["clip1"]), "--models-dir", str(files["models"])]) == 0
