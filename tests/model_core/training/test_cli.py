"""``vidrec train`` and ``vidrec eval`` run as a user runs them: the installed console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model_core import load_bundle
from model_core.checkpoint import read_bundle_config
from model_core.data import CLASS_NAMES, HELDOUT_SEEDS, TRAIN_SEEDS, generate_batch
from model_core.layers import sincos_2d
from model_core.training import CodecAugment, FrameRateAugment, preprocess_batch, train
from service.cli import build_parser, main, train_cmd

VIDREC = shutil.which("vidrec") or str(Path(sys.executable).parent / "vidrec")
MODEL = "tokshift_vit_tiny_patch16_224"
# Tiny: 4 steps of a 2-block model on 32-pixel clips, one thread as in this process.
TRAIN_ARGS = (
    MODEL, "--img-size", "32", "--frames", "4", "--depth", "2", "--clips", "64",
    "--epochs", "1", "--batch-size", "16", "--seed", "3", "--eval-clips", "22",
    "--device", "cpu", "--threads", "1",
)  # fmt: skip


def vidrec(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([VIDREC, *args], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("train") / "tiny.safetensors"
    result = vidrec("train", *TRAIN_ARGS, "--output", str(path))
    assert result.returncode == 0, result.stderr
    assert f"wrote {path}" in result.stdout and "held-out top-1" in result.stdout
    return path


def test_the_bundle_records_how_it_was_trained(bundle: Path) -> None:
    config, training = read_bundle_config(bundle)
    assert config.labels == CLASS_NAMES and (config.depth, config.img_size) == (2, 32)
    assert training is not None
    assert training["command"].startswith(f"vidrec train {MODEL} --output {bundle}")
    assert training["dataset"]["train_seeds"] == {"start": TRAIN_SEEDS[0], "stop": 64}
    assert training["dataset"]["spec"]["frames"] == 4 and training["seed"] == 3
    assert training["steps"] == 4 and training["clips_seen"] == 64
    assert training["final_loss"] > 0 and training["wall_seconds"] >= training["train_seconds"]
    assert training["heldout"]["clips"] == 22 and 0 <= training["heldout"]["top1"] <= 1
    assert training["torch"] == torch.__version__ and training["device"].startswith("cpu")
    assert training["options"] == {"shift_div": 4} == config.options  # the family's defaults


def test_the_bundle_gives_the_outputs_of_the_model_trained_in_memory(bundle: Path) -> None:
    # The same command trained here: the run is a function of its arguments.
    args = build_parser().parse_args(["train", *TRAIN_ARGS, "--output", "unused"])
    model = train_cmd.build_model(args)
    train(model, train_cmd.train_config(args, torch.device("cpu")))
    model.eval()
    loaded = load_bundle(bundle)
    frames, _ = generate_batch(HELDOUT_SEEDS[:6], train_cmd.train_config(args).spec)
    inputs = preprocess_batch(frames, loaded.config.preprocessing)
    with torch.no_grad():
        torch.testing.assert_close(loaded(inputs), model(inputs), rtol=1e-5, atol=1e-5)


def test_eval_json_counts_add_up(bundle: Path) -> None:
    result = vidrec("eval", str(bundle), "--clips", "33", "--seed-offset", "11", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["model"] == MODEL and report["labels"] == list(CLASS_NAMES)
    assert report["clips"] == 33
    assert report["seeds"] == {"start": HELDOUT_SEEDS[11], "stop": HELDOUT_SEEDS[11] + 33}
    totals = [row["total"] for row in report["per_class"]]
    assert totals == [3] * len(CLASS_NAMES)
    assert [sum(row) for row in report["confusion"]] == totals
    hits = [report["confusion"][i][i] for i in range(len(CLASS_NAMES))]
    assert hits == [row["correct"] for row in report["per_class"]]
    assert report["correct"] == sum(hits) and report["top1"] == pytest.approx(sum(hits) / 33)
    for pair in report["pairs"]:
        assert pair["total"] == 6
        rows = [CLASS_NAMES.index(pair["first"]), CLASS_NAMES.index(pair["second"])]
        inside = sum(report["confusion"][i][j] for i in rows for j in rows)
        assert pair["other"] == 6 - inside


def test_eval_prints_tables(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["eval", str(bundle), "--clips", "11", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "top-1" in out and "order-dependent pairs" in out and "confusion matrix" in out
    for name in CLASS_NAMES:
        assert name in out


def test_errors_are_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "no_such_model", "--output", str(tmp_path / "x.safetensors")]) == 2
    assert "unknown model" in capsys.readouterr().err
    assert main(["eval", str(tmp_path / "missing.safetensors")]) == 2
    assert "no bundle file" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_codec_augmentation_is_asked_for_on_the_command_line_and_recorded() -> None:
    plain = build_parser().parse_args(["train", *TRAIN_ARGS, "--output", "a.safetensors"])
    coded = build_parser().parse_args(
        ["train", *TRAIN_ARGS, "--output", "a.safetensors", "--codec-augment", "0.25"]
    )
    assert train_cmd.train_config(plain).codec is None
    assert "--codec-augment" not in train_cmd.command_line(plain)
    assert train_cmd.train_config(coded).codec == CodecAugment(0.25)
    assert "--codec-augment 0.25" in train_cmd.command_line(coded)
    recorded = train_cmd.train_config(coded).to_dict()["codec"]
    assert recorded == {"probability": 0.25, "crf": (16, 32)}


def test_frame_rate_augmentation_is_asked_for_on_the_command_line_and_recorded() -> None:
    plain = build_parser().parse_args(["train", *TRAIN_ARGS, "--output", "a.safetensors"])
    varied = build_parser().parse_args(
        ["train", *TRAIN_ARGS, "--output", "a.safetensors", "--fps-range", "5", "20"]
    )
    assert train_cmd.train_config(plain).rates is None
    assert "--fps-range" not in train_cmd.command_line(plain)
    assert train_cmd.train_config(varied).rates == FrameRateAugment(5.0, 20.0)
    assert "--fps-range 5.0 20.0" in train_cmd.command_line(varied)
    assert train_cmd.train_config(varied).to_dict()["rates"] == {"low": 5.0, "high": 20.0}
    with pytest.raises(ValueError, match="frame rates"):
        train_cmd.train_config(
            build_parser().parse_args(["train", *TRAIN_ARGS, "-o", "a", "--fps-range", "9", "3"])
        )


def test_a_sincos_position_start_is_asked_for_and_recorded(tmp_path: Path) -> None:
    argv = ["train", *TRAIN_ARGS, "--output", str(tmp_path / "a.safetensors")]
    plain = train_cmd.build_model(build_parser().parse_args(argv))
    gridded_args = build_parser().parse_args([*argv, "--pos-init", "sincos"])
    gridded = train_cmd.build_model(gridded_args)
    assert "--pos-init sincos" in train_cmd.command_line(gridded_args)
    # Same seed, same noise; the grid is added to the patch rows only.
    added = gridded.pos_embed - plain.pos_embed
    assert torch.equal(added[0, 0], torch.zeros_like(added[0, 0]))
    grid = plain.patch_embed.grid_size
    assert torch.allclose(added[0, 1:], 0.5 * sincos_2d(grid, plain.config.embed_dim))
    with pytest.raises(ValueError, match="--init replaces them"):
        train_cmd.build_model(
            build_parser().parse_args([*argv, "--pos-init", "sincos", "--init", "x.safetensors"])
        )


def test_the_auxiliary_loss_weights_are_asked_for_on_the_command_line_and_recorded() -> None:
    argv = ["train", *TRAIN_ARGS, "--output", "a.safetensors"]
    plain = build_parser().parse_args(argv)
    weighted = build_parser().parse_args(
        [*argv, "--actor-loss", "1", "--motion-loss", "0.5", "--turn-loss", "2"]
    )
    assert not train_cmd.train_config(plain).needs_actor_targets
    config = train_cmd.train_config(weighted)
    assert (config.actor_loss, config.motion_loss, config.turn_loss) == (1.0, 0.5, 2.0)
    assert config.to_dict()["turn_loss"] == 2.0
    assert "--turn-loss 2.0" in train_cmd.command_line(weighted)


def test_the_varied_scene_is_asked_for_on_the_command_line_and_recorded() -> None:
    plain = build_parser().parse_args(["train", *TRAIN_ARGS, "--output", "a.safetensors"])
    varied = build_parser().parse_args(
        ["train", *TRAIN_ARGS, "--output", "a.safetensors", "--scene", "varied"]
    )
    assert train_cmd.train_config(plain).spec.scene == "classic"
    assert "--scene" not in train_cmd.command_line(plain)  # old commands read as recorded
    assert train_cmd.train_config(varied).spec.scene == "varied"
    assert "--scene varied" in train_cmd.command_line(varied)


def test_a_share_of_varied_clips_is_asked_for_on_the_command_line_and_recorded() -> None:
    plain = build_parser().parse_args(["train", *TRAIN_ARGS, "--output", "a.safetensors"])
    mixed = build_parser().parse_args(
        ["train", *TRAIN_ARGS, "--output", "a.safetensors", "--varied-share", "0.7"]
    )
    assert train_cmd.train_config(plain).varied_share == 0.0
    assert "--varied-share" not in train_cmd.command_line(plain)
    config = train_cmd.train_config(mixed)
    assert config.varied_share == 0.7 and config.spec.scene == "classic"
    assert config.to_dict()["varied_share"] == 0.7
    assert "--varied-share 0.7" in train_cmd.command_line(mixed)
    assert config.varied_scene == "varied" and "--varied-scene" not in train_cmd.command_line(mixed)
    fine = build_parser().parse_args(
        ["train", *TRAIN_ARGS, "-o", "a", "--varied-share", "0.7", "--varied-scene", "fine"]
    )
    assert train_cmd.train_config(fine).to_dict()["varied_scene"] == "fine"
    assert "--varied-share 0.7 --varied-scene fine" in train_cmd.command_line(fine)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", *TRAIN_ARGS, "-o", "a", "--varied-scene", "classic"])
