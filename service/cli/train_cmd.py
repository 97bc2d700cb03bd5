"""``vidrec train``: train a registered model on the procedural action dataset and write a bundle
that records how it was made."""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from dataclasses import asdict, replace
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import torch
from tqdm import tqdm

from model_core import VideoTransformer, create_model, list_models, load_checkpoint, save_bundle
from model_core.checkpoint import read_training_record
from model_core.data import CLASS_NAMES, LOOK_RANGES, SCENES, ClipSpec
from model_core.training import (
    POS_INITS,
    Augment,
    CodecAugment,
    EvalReport,
    FrameRateAugment,
    StepInfo,
    TrainConfig,
    add_sincos_positions,
    evaluate,
    resolve_device,
    train,
)


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a model on generated clips and write a bundle",
        description=(
            "Train a registered model on clips generated on the fly from TRAIN_SEEDS, score it "
            "on held-out clips, and write a vidrec bundle whose metadata records the run."
        ),
    )
    parser.add_argument("model", help="registered model name (see `vidrec models`)")
    parser.add_argument("-o", "--output", required=True, help="bundle path (.safetensors)")
    data = parser.add_argument_group("data")
    data.add_argument("--img-size", type=int, default=112, help="frame side in pixels")
    data.add_argument("--frames", type=int, default=8, help="frames per clip")
    data.add_argument("--fps", type=float, default=10.0, help="frame rate of the clips")
    data.add_argument("--clips", type=int, default=2200, help="training clips per epoch")
    data.add_argument(
        "--fresh-data", action="store_true", help="new clips every epoch instead of repeats"
    )
    data.add_argument(
        "--seed-offset", type=int, default=0, help="index in TRAIN_SEEDS of the first clip"
    )
    data.add_argument(
        "--augment", action="store_true", help="small translations and brightness/contrast"
    )
    data.add_argument(
        "--fps-range",
        type=float,
        nargs=2,
        default=None,
        metavar=("LOW", "HIGH"),
        help="generate each clip at its own frame rate, log-uniform in LOW..HIGH fps (the model "
        "sees each action at several speeds per frame; --fps stays the held-out rate)",
    )
    data.add_argument(
        "--scene",
        choices=SCENES,
        default="classic",
        help="training scenes: classic (the shipped bundles' data), varied (tiled, textured and "
        "panning backgrounds, thin, small and low-contrast actors, stronger noise) or fine (varied "
        "with smaller actors and markers); held-out clips stay classic",
    )
    data.add_argument(
        "--varied-share",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="draw this share of the training clips in the varied scene and the rest in --scene "
        "(0.5 mixes them evenly; 0: none)",
    )
    data.add_argument(
        "--varied-scene",
        choices=tuple(LOOK_RANGES),
        default="varied",
        help="the scene of --varied-share's clips: varied, or fine (smaller actors and markers)",
    )
    data.add_argument(
        "--codec-augment",
        type=float,
        default=None,
        metavar="SHARE",
        help="round-trip this share of the clips through H.264 at a random quality (crf 16-32)",
    )
    model = parser.add_argument_group("model")
    model.add_argument("--depth", type=int, default=None, help="transformer blocks (override)")
    model.add_argument("--patch-size", type=int, default=None, help="patch side (override)")
    model.add_argument("--drop-path", type=float, default=0.0, help="stochastic depth rate")
    model.add_argument("--causal", action="store_true", help="the causal (streaming) variant")
    model.add_argument(
        "--pos-init",
        choices=POS_INITS,
        default="trunc_normal",
        help="starting position embedding for weights trained from scratch: timm's small noise, "
        "or a 2-D sine-cosine grid added to it (sincos: the models learn where things are; see "
        "docs/DATASET.md)",
    )
    model.add_argument(
        "--crop-pct",
        type=float,
        default=1.0,
        help="preprocessing centre crop (1.0: the whole frame; the actor may be near an edge)",
    )
    optim = parser.add_argument_group("optimisation")
    optim.add_argument("--epochs", type=int, default=1)
    optim.add_argument("--batch-size", type=int, default=16)
    optim.add_argument("--lr", type=float, default=5e-4, help="peak learning rate (AdamW)")
    optim.add_argument("--weight-decay", type=float, default=0.05)
    optim.add_argument("--warmup", type=float, default=0.1, help="warm-up fraction of the steps")
    optim.add_argument("--label-smoothing", type=float, default=0.1)
    optim.add_argument("--grad-clip", type=float, default=1.0, help="max grad norm; 0: none")
    optim.add_argument(
        "--actor-loss",
        type=float,
        default=0.0,
        help="weight of the auxiliary per-frame actor supervision (0: off; see docs/DATASET.md)",
    )
    optim.add_argument(
        "--motion-loss",
        type=float,
        default=0.0,
        help="weight of the auxiliary frame-to-frame motion supervision after the temporal "
        "operator (0: off; see docs/DATASET.md)",
    )
    optim.add_argument(
        "--turn-loss",
        type=float,
        default=0.0,
        help="weight of the auxiliary orientation supervision on the token of the patch under "
        "the actor's centre (0: off; see docs/DATASET.md)",
    )
    optim.add_argument(
        "--init", default=None, help="start from these weights (any checkpoint vidrec loads)"
    )
    optim.add_argument("--seed", type=int, default=0, help="weights, clip order, augmentation")
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)"
    )
    run_group.add_argument(
        "--workers", type=int, default=0, help="clip-making processes (0: one background thread)"
    )
    run_group.add_argument(
        "--amp",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="bfloat16 autocast (default: on for CUDA)",
    )
    run_group.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    run_group.add_argument(
        "--eval-clips", type=int, default=220, help="held-out clips scored at the end (0: none)"
    )
    run_group.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.set_defaults(handler=run)


def model_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The ``create_model`` arguments a run uses."""
    overrides: dict[str, Any] = {
        "img_size": args.img_size,
        "num_frames": args.frames,
        "labels": list(CLASS_NAMES),
        "crop_pct": args.crop_pct,
        "drop_path_rate": args.drop_path,
    }
    if args.depth is not None:
        overrides["depth"] = args.depth
    if args.patch_size is not None:
        overrides["patch_size"] = args.patch_size
    if args.causal:
        overrides["causal"] = True
    return overrides


def build_model(args: argparse.Namespace) -> VideoTransformer:
    """The untrained model, its weights drawn from ``--seed``."""
    if args.model not in list_models():
        raise ValueError(f"unknown model {args.model!r}; see `vidrec models`")
    torch.manual_seed(args.seed)
    model = create_model(args.model, **model_overrides(args))
    if args.pos_init == "sincos":
        if args.init is not None:
            raise ValueError("--pos-init sincos starts weights from scratch; --init replaces them")
        add_sincos_positions(model)
    if args.init is not None:
        loaded = load_checkpoint(model, args.init, strict=False)
        print(f"init from {args.init}: {loaded}", file=sys.stderr)
    return model


def train_config(args: argparse.Namespace, device: torch.device | None = None) -> TrainConfig:
    """The run's ``TrainConfig``."""
    amp = args.amp if args.amp is not None else (device is not None and device.type == "cuda")
    return TrainConfig(
        clips=args.clips,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        warmup=args.warmup,
        label_smoothing=args.label_smoothing,
        grad_clip=args.grad_clip or None,
        augment=Augment() if args.augment else None,
        codec=CodecAugment(args.codec_augment) if args.codec_augment else None,
        rates=FrameRateAugment(*args.fps_range) if args.fps_range else None,
        varied_share=args.varied_share,
        varied_scene=args.varied_scene,
        fresh=args.fresh_data,
        seed=args.seed,
        offset=args.seed_offset,
        workers=args.workers,
        amp=amp,
        actor_loss=args.actor_loss,
        motion_loss=args.motion_loss,
        turn_loss=args.turn_loss,
        spec=ClipSpec(frames=args.frames, size=args.img_size, fps=args.fps, scene=args.scene),
    )


def command_line(args: argparse.Namespace) -> str:
    """The command with every setting spelled out, so it repeats the run even if defaults change."""
    words = ["vidrec", "train", args.model, "--output", args.output]
    for name in (
        "img_size",
        "frames",
        "fps",
        "clips",
        "seed_offset",
        "codec_augment",
        "depth",
        "patch_size",
        "pos_init",
        "drop_path",
        "crop_pct",
        "epochs",
        "batch_size",
        "lr",
        "weight_decay",
        "warmup",
        "label_smoothing",
        "grad_clip",
        "actor_loss",
        "motion_loss",
        "turn_loss",
        "init",
        "seed",
        "device",
        "workers",
        "eval_clips",
    ):
        value = getattr(args, name)
        if value is not None:
            words += ["--" + name.replace("_", "-"), str(value)]
    if args.fps_range is not None:
        words += ["--fps-range", *(str(v) for v in args.fps_range)]
    if args.scene != "classic":  # the classic scene's commands stay as they were recorded
        words += ["--scene", args.scene]
    if args.varied_share:
        words += ["--varied-share", str(args.varied_share)]
    if args.varied_scene != "varied":  # earlier commands were recorded without it
        words += ["--varied-scene", args.varied_scene]
    for flag in ("fresh_data", "augment", "causal"):
        if getattr(args, flag):
            words.append("--" + flag.replace("_", "-"))
    if args.amp is not None:
        words.append("--amp" if args.amp else "--no-amp")
    return shlex.join(words)


def describe_device(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.get_num_threads()} threads)"


def _version() -> str:
    try:
        return metadata.version("vidrec")
    except metadata.PackageNotFoundError:
        return "unknown"


def run(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    model = build_model(args)
    config = train_config(args, device)

    with tqdm(
        total=config.total_steps,
        desc=f"train {args.model}",
        unit="step",
        disable=args.quiet,
        dynamic_ncols=True,
        file=sys.stderr,
    ) as bar:

        def progress(step: StepInfo) -> None:
            bar.set_postfix(epoch=step.epoch + 1, loss=f"{step.loss:.3f}", lr=f"{step.lr:.2e}")
            bar.update(1)

        result = train(model, config, device=device, progress=progress)

    report: EvalReport | None = None
    if args.eval_clips > 0:
        report = evaluate(
            model,
            args.eval_clips,
            spec=replace(config.spec, scene="classic"),
            device=device,
            workers=args.workers,
            amp=config.amp,
        )
    seeds = config.train_seeds()
    training = {
        "command": command_line(args),
        "init": _init_record(args.init),
        "model": args.model,
        "overrides": model_overrides(args),
        "options": dict(model.config.options),  # the family's settings, defaults included
        "dataset": {
            "generator": "model_core.data",
            "spec": asdict(config.spec),
            "train_seeds": {"start": seeds.start, "stop": seeds.stop},
            "clips_per_epoch": config.clips,
            "fresh": config.fresh,
        },
        "config": config.to_dict(),
        "seed": args.seed,
        "steps": result.steps,
        "clips_seen": result.clips_seen,
        "final_loss": result.final_loss,
        "epoch_losses": list(result.epoch_losses),
        "heldout": _heldout_summary(report),
        "train_seconds": round(result.seconds, 2),
        "wall_seconds": round(time.perf_counter() - started, 2),
        "device": describe_device(device),
        "torch": torch.__version__,
        "vidrec": _version(),
        "finished": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    path = save_bundle(model, args.output, training=training)

    print(f"wrote {path}")
    print(
        f"{result.steps} steps, {result.clips_seen} clips, final loss {result.final_loss:.4f}, "
        f"{result.seconds:.1f} s training on {training['device']}"
    )
    if report is not None:
        print(f"held-out top-1 {report.top1:.2%} ({report.correct}/{report.clips})")
        for pair in report.pairs:
            print(f"  {pair.first} / {pair.second}: swapped {pair.swapped} of {pair.total}")
    return 0


def _init_record(path: str | None) -> dict[str, Any] | None:
    """Where the starting weights came from; their own record (a vidrec bundle's training, or
    what ``save_weights`` put in plain weights) is kept, so a bundle trained in stages lists
    every command that made it."""
    if path is None:
        return None
    return {"path": str(path), "training": read_training_record(path)}


def _heldout_summary(report: EvalReport | None) -> dict[str, Any] | None:
    """What a bundle keeps of the final evaluation: enough to compare runs at a glance."""
    if report is None:
        return None
    return {
        "clips": report.clips,
        "seeds": None if report.seeds is None else list(report.seeds),
        "top1": report.top1,
        "per_class": {c.name: c.accuracy for c in report.classes},
        "pair_swap_rate": {f"{p.first}/{p.second}": p.swap_rate for p in report.pairs},
    }
