"""Benchmark of the Eventful streaming engine (``vidrec bench eventful``).

Sections:

1. backbones: ViT-S/16 and ViT-B/16 at 224 (causal factorized, random weights) on a synthetic
   224-px stream whose frames change partially (objects moving over a static background):
   wall clock per frame dense vs eventful at several budgets, the GMAC ratio and the relative
   error of the final features. Every variant runs on the same frame in turn, so load changes
   on a shared machine hit them alike; compare ratios, not absolute times.
2. batching: throughput of 1, 8 and 32 sessions in one step against the same sessions stepped
   one by one.
3. streaming model (``--bundle PATH``, e.g. the shipped
   ``model_core/zoo/bundles/factorized_causal_tiny_motion112.safetensors``): on generated long
   streams of the procedural dataset (``generate_stream``, with per-frame ground truth), the
   per-window top-1 of the dense model and of the eventful engine against the ground truth (a
   window's most frequent class), the agreement of the eventful labels with the dense model's,
   GMAC and wall-clock ratios, at several budgets. Skipped without a bundle.

Prints a table per section and writes JSON (and a PNG of accuracy or error against compute
when matplotlib is installed).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from model_core import create_model
from model_core.eventful import KEEP_ALL, Budget, EventfulEngine, Threshold, TopFraction
from model_core.eventful.accounting import dense_frame_macs
from model_core.models import VideoTransformer

BUDGETS: dict[str, Budget] = {
    "keep-all": KEEP_ALL,
    "top 50%": TopFraction(0.5),
    "top 25%": TopFraction(0.25),
    "top 10%": TopFraction(0.1),
}


def synthetic_stream(
    frames: int, size: int, seed: int = 0, objects: int = 2, noise: float = 0.0
) -> Tensor:
    """``(frames, 3, size, size)`` normalised frames: a static textured background with
    ``objects`` squares moving at different speeds, plus optional per-pixel noise."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(3, size // 8, size // 8, generator=generator)
    background = torch.nn.functional.interpolate(coarse[None], size=(size, size), mode="bilinear")[
        0
    ] + 0.3 * torch.randn(3, size, size, generator=generator)
    out = background.repeat(frames, 1, 1, 1)  # (frames, 3, size, size)
    side = size // 5
    for k in range(objects):
        colour = torch.randn(3, 1, 1, generator=generator)
        top = int(torch.randint(0, size - side, (1,), generator=generator))
        speed = 2 + 3 * k
        for t in range(frames):
            left = (17 * k + speed * t) % (size - side)
            out[t, :, top : top + side, left : left + side] = colour
    if noise:
        out += noise * torch.randn(out.shape, generator=generator)
    return out


def rel_err(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def build(name: str, img_size: int = 224) -> VideoTransformer:
    torch.manual_seed(0)
    return create_model(name, causal=True, img_size=img_size).eval()


def backbone_rows(
    name: str, frames: Tensor, budgets: dict[str, Budget], repeats: int = 1
) -> list[dict[str, Any]]:
    """Dense and eventful per-frame wall clock, GMAC ratio and feature error on one stream.

    The stream is played ``repeats`` times, each time from a fresh session: the times are the
    median over the repeats and ``speedup_range`` the lowest and highest speed-up of one
    repeat, which shows how much the machine moves between passes.
    """
    model = build(name, frames.shape[-1])
    # A stride past the stream keeps the temporal head out of the per-frame figures.
    engines = {
        label: EventfulEngine(model, capacity=1, stride=frames.shape[0] + 1) for label in budgets
    }
    dense_gmacs = sum(dense_frame_macs(model).values()) / 1e9
    passes = [_time_backbone(model, engines, frames, budgets) for _ in range(repeats)]
    dense_s = float(np.median([p.dense_s for p in passes]))
    timed = frames.shape[0] - 1  # the first frame is a full compute for every session
    rows = []
    for label in budgets:
        seconds = float(np.median([p.seconds[label] for p in passes]))
        speedups = [p.dense_s / p.seconds[label] for p in passes]
        gmacs = passes[0].spent[label] / timed
        errors = passes[0].errors[label]
        rows.append(
            {
                "model": name,
                "budget": label,
                "repeats": repeats,
                "dense_ms": 1000 * dense_s / timed,
                "eventful_ms": 1000 * seconds / timed,
                "speedup": float(np.median(speedups)),
                "speedup_range": [min(speedups), max(speedups)],
                "dense_gmacs": dense_gmacs,
                "gmacs": gmacs,
                "gmac_ratio": dense_gmacs / gmacs,
                "final_rel_err": errors[-1],
                "mean_rel_err": sum(errors) / len(errors),
                "bytes_per_slot": engines[label].bytes_per_slot,
            }
        )
    return rows


@dataclass
class _BackbonePass:
    """One pass over the stream: seconds of the timed frames, GMACs spent, feature errors."""

    dense_s: float = 0.0
    seconds: dict[str, float] = field(default_factory=dict)
    spent: dict[str, float] = field(default_factory=dict)
    errors: dict[str, list[float]] = field(default_factory=dict)


def _time_backbone(
    model: VideoTransformer,
    engines: dict[str, EventfulEngine],
    frames: Tensor,
    budgets: dict[str, Budget],
) -> _BackbonePass:
    result = _BackbonePass(
        seconds=dict.fromkeys(budgets, 0.0),
        spent=dict.fromkeys(budgets, 0.0),
        errors={label: [] for label in budgets},
    )
    slots = {label: engines[label].open(budget) for label, budget in budgets.items()}
    with torch.no_grad():
        for t in range(frames.shape[0]):
            start = time.perf_counter()
            dense = model.forward_features(frames[None, t : t + 1])[0, 0]  # (tokens, dim)
            elapsed = time.perf_counter() - start
            # The first frame is a full compute for every session: time the steady state.
            if t > 0:
                result.dense_s += elapsed
            for label, engine in engines.items():
                start = time.perf_counter()
                step = engine.step(frames[t : t + 1], [slots[label]])
                elapsed = time.perf_counter() - start
                if t > 0:
                    result.seconds[label] += elapsed
                    result.spent[label] += step.costs[0].gmacs
                result.errors[label].append(rel_err(step.tokens[0], dense))
    for label, engine in engines.items():
        engine.close(slots[label])
    return result


def batching_rows(
    name: str, sessions: Sequence[int], frames: int, budget: Budget, img_size: int
) -> list[dict[str, Any]]:
    """Frames per second of ``k`` sessions in one step against ``k`` steps of one session."""
    model = build(name, img_size)
    rows = []
    for count in sessions:
        streams = torch.stack([synthetic_stream(frames, img_size, seed=s) for s in range(count)])
        # (sessions, frames, 3, size, size)
        batched = EventfulEngine(model, capacity=count)
        alone = EventfulEngine(model, capacity=count)
        batched_slots = [batched.open(budget) for _ in range(count)]
        alone_slots = [alone.open(budget) for _ in range(count)]
        batched_s = alone_s = 0.0
        for t in range(frames):
            start = time.perf_counter()
            batched.step(streams[:, t], batched_slots)
            if t > 0:
                batched_s += time.perf_counter() - start
            start = time.perf_counter()
            for s, slot in enumerate(alone_slots):
                alone.step(streams[s, t : t + 1], [slot])
            if t > 0:
                alone_s += time.perf_counter() - start
        steady = count * (frames - 1)
        rows.append(
            {
                "model": name,
                "sessions": count,
                "budget": _label(budget),
                "batched_fps": steady / batched_s,
                "one_by_one_fps": steady / alone_s,
                "speedup": alone_s / batched_s,
                "pool_bytes": batched.pool.state.nbytes,
            }
        )
        del batched, alone
    return rows


HELDOUT_SEED = 20_000
"""Stream seeds are split in two ranges. Below this one: tuning (every sweep that chose a
budget ran there: seeds 100 to 195 and 1000 to 1095 for the first picks, 10000 on for the
current one). From this one up: held out, for evaluating a budget already chosen. A run says
which it is (``--held-out``) and the benchmark refuses seeds of the other range."""


@dataclass(frozen=True)
class SeedPlan:
    """The streams of a run: ``samples`` disjoint samples of ``streams`` consecutive seeds from
    ``seed`` (sample ``k`` holds seeds ``seed + k·streams`` to ``seed + (k+1)·streams - 1``)."""

    seed: int
    streams: int
    samples: int = 1

    @property
    def seeds(self) -> range:
        return range(self.seed, self.seed + self.streams * self.samples)

    def sample_seeds(self, k: int) -> range:
        return range(self.seed + k * self.streams, self.seed + (k + 1) * self.streams)


def check_seeds(plan: SeedPlan, held_out: bool, tuned_on: Sequence[range] = ()) -> None:
    """Refuses a run whose seeds cross into the other range, or a held-out run that shares a
    seed with a tuning report it names.

    Raises:
        ValueError: the seeds overlap what they must stay apart from.
    """
    seeds = plan.seeds
    if plan.streams < 1 or plan.samples < 1 or seeds.start < 0:
        raise ValueError(f"need at least one stream and one sample from seed >= 0, got {plan}")
    if held_out and seeds.start < HELDOUT_SEED:
        raise ValueError(
            f"held-out seeds start at {HELDOUT_SEED}; seeds {seeds.start} to {seeds.stop - 1} "
            "reach into the tuning range"
        )
    if not held_out and seeds.stop > HELDOUT_SEED:
        raise ValueError(
            f"seeds {seeds.start} to {seeds.stop - 1} reach into the held-out range (from "
            f"{HELDOUT_SEED}); a sweep that may choose a budget stays below it (or pass --held-out)"
        )
    for tuned in tuned_on:
        if seeds.start < tuned.stop and tuned.start < seeds.stop:
            raise ValueError(
                f"seeds {seeds.start} to {seeds.stop - 1} overlap the tuning seeds "
                f"{tuned.start} to {tuned.stop - 1}"
            )


def report_seeds(report: dict[str, Any]) -> range:
    """The stream seeds a ``vidrec bench eventful --bundle`` report ran on."""
    config = report["config"]
    return SeedPlan(
        config["bundle_seed"], config["bundle_streams"], config.get("bundle_samples", 1)
    ).seeds


def bundle_stream(model: VideoTransformer, seed: int, frames: int) -> tuple[Tensor, np.ndarray]:
    """One generated long stream of the procedural dataset (``generate_stream`` seed ``seed``),
    cut to ``frames`` frames and preprocessed as the live runner does: ``(frames, 3, S, S)``
    model input with the ``(frames,)`` ground-truth class of every frame."""
    from model_core.data import ClipSpec, generate_stream
    from model_core.preprocess import preprocess_frames

    spec = ClipSpec(size=model.config.preprocessing.resize_size)
    # An action with its idle gap lasts 12 + 12.5 frames on average: ask for enough of them.
    actions = max(1, frames // 16 + 1)
    stream = generate_stream(seed, num_actions=actions, spec=spec)
    while len(stream.frames) < frames:  # a short draw: one more action
        actions += 1
        stream = generate_stream(seed, num_actions=actions, spec=spec)
    return preprocess_frames(stream.frames[:frames], model.config.preprocessing), stream.labels[
        :frames
    ]


def window_truth(labels: np.ndarray) -> int:
    """The ground truth of a window: its most frequent per-frame class (a tie goes to the
    class seen last)."""
    counts = np.bincount(labels)
    return int(next(c for c in labels[::-1] if counts[c] == counts.max()))


def paired_loss_interval(
    dense_correct: np.ndarray,
    eventful_correct: np.ndarray,
    stream_of: np.ndarray,
    rounds: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% bootstrap interval of the top-1 points lost (dense minus eventful).

    Windows of one stream overlap and share its actor and scene, so they are not independent:
    the bootstrap resamples whole streams, with their windows, and keeps each window's dense and
    eventful outcome together (a paired difference).
    """
    streams = int(stream_of.max()) + 1
    dense = np.bincount(stream_of, weights=dense_correct, minlength=streams)
    eventful = np.bincount(stream_of, weights=eventful_correct, minlength=streams)
    windows = np.bincount(stream_of, minlength=streams)
    return stream_loss_interval(dense, eventful, windows, rounds, seed)


def stream_loss_interval(
    dense: np.ndarray, eventful: np.ndarray, windows: np.ndarray, rounds: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval of the points lost from per-stream tallies: windows right under
    the dense model and under the budget, and windows, per stream (resampled whole)."""
    streams = len(windows)
    picks = np.random.default_rng(seed).integers(0, streams, size=(rounds, streams))
    lost = 100 * (dense[picks].sum(1) - eventful[picks].sum(1)) / windows[picks].sum(1)
    low, high = np.percentile(lost, [2.5, 97.5])
    return float(low), float(high)


@dataclass
class _Tallies:
    """Per stream: windows, windows the dense model got right, and per budget the windows it
    got right, agreed with dense on, and the MACs it and the dense model spent."""

    windows: list[int] = field(default_factory=list)
    dense_right: list[int] = field(default_factory=list)
    right: dict[str, list[int]] = field(default_factory=dict)
    agree: dict[str, list[int]] = field(default_factory=dict)
    macs: dict[str, list[float]] = field(default_factory=dict)
    dense_macs: dict[str, list[float]] = field(default_factory=dict)


def _loss_summary(t: _Tallies, label: str, streams: slice) -> dict[str, Any]:
    """Points lost with their interval and the GMAC ratio over the streams ``streams``."""
    windows = np.array(t.windows[streams])
    dense = np.array(t.dense_right[streams])
    right = np.array(t.right[label][streams])
    low, high = stream_loss_interval(dense, right, windows)
    return {
        "windows": int(windows.sum()),
        "dense_top1": float(dense.sum() / windows.sum()),
        "eventful_top1": float(right.sum() / windows.sum()),
        "top1_agreement": float(np.sum(t.agree[label][streams]) / windows.sum()),
        "top1_lost_points": float(100 * (dense.sum() - right.sum()) / windows.sum()),
        "top1_lost_ci95": [low, high],
        "gmac_ratio": float(np.sum(t.dense_macs[label][streams]) / np.sum(t.macs[label][streams])),
    }


def bundle_rows(
    path: str,
    budgets: dict[str, Budget],
    streams: int,
    frames: int,
    seed: int = 100,
    samples: int = 1,
) -> list[dict[str, Any]]:
    """Per-window top-1 of a trained streaming model on generated long streams, dense and
    eventful: against the ground truth and agreement with the dense labels, with the GMAC and
    wall-clock ratios. Dense and every budget run on each stream in turn, so load changes hit
    them alike. The streams are ``samples`` disjoint samples of ``streams`` ``generate_stream``
    seeds each (:class:`SeedPlan`); a row pools them and lists each under ``samples``, and
    ``per_stream`` holds the tallies the figures come from."""
    from model_core import load_bundle

    model = load_bundle(path).eval()
    window = model.config.num_frames
    stride = max(1, window // 2)
    plan = SeedPlan(seed, streams, samples)
    engines = {label: EventfulEngine(model, capacity=1, stride=stride) for label in budgets}
    tallies = _Tallies(
        right={label: [] for label in budgets},
        agree={label: [] for label in budgets},
        macs={label: [] for label in budgets},
        dense_macs={label: [] for label in budgets},
    )
    pure_truth: list[tuple[bool, int, int, dict[str, int]]] = []  # pure windows' outcomes
    dense_s = 0.0
    seconds = dict.fromkeys(budgets, 0.0)
    with torch.no_grad():
        for stream_seed in plan.seeds:
            clip, frame_labels = bundle_stream(model, stream_seed, frames)
            ends = range(stride, frames + 1, stride)
            truth, pure = [], []
            for end in ends:
                in_window = frame_labels[max(0, end - window) : end]
                truth.append(window_truth(in_window))
                # every frame of the window has the same class
                pure.append(len(in_window) == window and bool((in_window == in_window[0]).all()))
            start = time.perf_counter()
            # Frame by frame, as a dense streaming server would run.
            features = torch.cat([model.forward_features(frame[None, None]) for frame in clip])
            # (frames, 1, tokens, dim)
            dense_labels = []
            for end in ends:
                cls = features[max(0, end - window) : end, :1]  # (window, 1, tokens, dim)
                dense_labels.append(int(model.forward_head(cls.transpose(0, 1)).argmax()))
            dense_s += time.perf_counter() - start
            labels: dict[str, list[int]] = {}
            for label, budget in budgets.items():
                engine = engines[label]
                slot = engine.open(budget)
                start = time.perf_counter()
                labels[label] = []
                for t in range(frames):
                    result = engine.step(clip[t : t + 1], [slot])
                    if result.logits[0] is not None:
                        labels[label].append(int(result.logits[0].argmax()))
                seconds[label] += time.perf_counter() - start
                tallies.macs[label].append(engine.totals(slot).macs)
                tallies.dense_macs[label].append(engine.totals(slot).dense_macs)
                engine.close(slot)
                tallies.right[label].append(
                    sum(p == g for p, g in zip(labels[label], truth, strict=True))
                )
                tallies.agree[label].append(
                    sum(p == d for p, d in zip(labels[label], dense_labels, strict=True))
                )
            tallies.windows.append(len(truth))
            tallies.dense_right.append(
                sum(d == g for d, g in zip(dense_labels, truth, strict=True))
            )
            for i, (q, g) in enumerate(zip(pure, truth, strict=True)):
                pure_truth.append((q, g, dense_labels[i], {k: v[i] for k, v in labels.items()}))

    def pure_top1(label: str | None) -> float | None:
        hits = [(d if label is None else e[label]) == g for q, g, d, e in pure_truth if q]
        return sum(hits) / len(hits) if hits else None

    count = streams * samples
    rows = []
    for label in budgets:
        pooled = _loss_summary(tallies, label, slice(None))
        per_sample = [
            {
                "seeds": [plan.sample_seeds(k).start, plan.sample_seeds(k).stop - 1],
                **_loss_summary(tallies, label, slice(k * streams, (k + 1) * streams)),
            }
            for k in range(samples)
        ]
        rows.append(
            {
                "bundle": path,
                "budget": label,
                **pooled,
                "pure_windows": sum(q for q, *_ in pure_truth),
                "dense_top1_pure": pure_top1(None),
                "eventful_top1_pure": pure_top1(label),
                "dense_gmacs_per_frame": sum(tallies.dense_macs[label]) / 1e9 / (count * frames),
                "gmacs_per_frame": sum(tallies.macs[label]) / 1e9 / (count * frames),
                "dense_ms_per_frame": 1000 * dense_s / (count * frames),
                "eventful_ms_per_frame": 1000 * seconds[label] / (count * frames),
                "wall_clock_ratio": dense_s / seconds[label],
                "samples": per_sample,
                "per_stream": {
                    "windows": tallies.windows,
                    "dense_right": tallies.dense_right,
                    "eventful_right": tallies.right[label],
                },
            }
        )
    return rows


def threshold_arg(text: str) -> Threshold:
    """A ``--bundle-thresholds`` value: ``1`` (every gate) or ``0.75/1.5/1.5`` (qkv/proj/mlp),
    either followed by ``@T`` for an input gate of threshold ``T`` (``1.5@4``)."""
    try:
        gates, _, input_text = text.partition("@")
        values = tuple(float(part) for part in gates.split("/"))
        input_gate = float(input_text) if input_text else None
        if len(values) == 1:
            return Threshold(values[0], input=input_gate)
        if len(values) == 3:
            return Threshold((values[0], values[1], values[2]), input=input_gate)
        raise ValueError(f"{len(values)} numbers")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            "a threshold is a number >= 0 or three of them as QKV/PROJ/MLP, optionally with "
            f"@INPUT for the input gate, got {text!r} ({exc})"
        ) from exc


def threshold_label(budget: Threshold) -> str:
    """``threshold 1``, ``threshold 0.75/1.5/1.5`` for one threshold per gate, and ``input 4``
    after either for an input gate."""
    if isinstance(budget.threshold, tuple):
        label = "threshold " + "/".join(f"{t:g}" for t in budget.threshold)
    else:
        label = f"threshold {budget.threshold:g}"
    return label if budget.input is None else f"{label} input {budget.input:g}"


def _label(budget: Budget) -> str:
    return next((k for k, v in BUDGETS.items() if v == budget), repr(budget))


def table(rows: list[dict[str, Any]], columns: Sequence[str]) -> str:
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.4g}"
        if isinstance(value, list):
            return "[" + ", ".join(cell(v) for v in value) + "]"
        return str(value)

    body = [[cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(x) for x in (c, *(r[i] for r in body))) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, widths, strict=True)) for r in body]
    return "\n".join(lines)


def plot(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    if results.get("bundle"):
        _plot_bundle(plt, results["bundle"], path)
        return True
    # The backbones: error of the final features against compute.
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, model in enumerate(sorted({r["model"] for r in results["backbones"]})):
        rows = [r for r in results["backbones"] if r["model"] == model]
        xs = [1 / r["gmac_ratio"] for r in rows]
        ys = [r["final_rel_err"] for r in rows]
        ax.plot(xs, ys, "o-", color=f"C{i}", label=model)
    ax.set_ylabel("relative error of final features vs dense")
    ax.legend()
    ax.set_xlabel("compute (fraction of dense GMACs)")
    ax.set_title("Eventful engine: accuracy against compute")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _budget_kind(label: str) -> str:
    if label == "keep-all" or label.startswith("top "):
        return "top fraction"
    if " input " in label:
        return "threshold with input gate"
    return "threshold per gate" if "/" in label else "threshold"


def _plot_bundle(plt: Any, rows: list[dict[str, Any]], path: Path) -> None:
    """Agreement with dense and points lost (with their intervals) against compute, one
    series per kind of budget."""
    fig, (agree, lost) = plt.subplots(1, 2, figsize=(11, 4))
    kinds = ("top fraction", "threshold", "threshold per gate", "threshold with input gate")
    for i, kind in enumerate(kinds):
        group = sorted(
            (r for r in rows if _budget_kind(r["budget"]) == kind), key=lambda r: r["gmac_ratio"]
        )
        if not group:
            continue
        xs = [1 / r["gmac_ratio"] for r in group]
        style = "o" if kind == "threshold per gate" else "o-"
        agree.plot(xs, [100 * r["top1_agreement"] for r in group], style, color=f"C{i}", label=kind)
        low = [r["top1_lost_points"] - r["top1_lost_ci95"][0] for r in group]
        high = [r["top1_lost_ci95"][1] - r["top1_lost_points"] for r in group]
        lost.errorbar(
            xs,
            [r["top1_lost_points"] for r in group],
            yerr=[low, high],
            fmt=style,
            color=f"C{i}",
            capsize=3,
            label=kind,
        )
    lost.axhline(0, color="grey", lw=0.8)
    lost.axhline(1, color="C3", ls="--", lw=0.8, label="1 point")
    agree.set_ylabel("labels equal to the dense model's (%)")
    lost.set_ylabel("top-1 lost against dense (points, 95% interval)")
    for ax in (agree, lost):
        ax.set_xlabel("compute (fraction of dense GMACs)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Eventful engine: the streaming model's labels against compute")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vidrec bench eventful", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=["factorized_vit_small_patch16_224", "factorized_vit_base_patch16_224"],
    )
    parser.add_argument("--frames", type=int, default=16, help="frames per backbone stream")
    parser.add_argument(
        "--repeats", type=int, default=1, help="passes over the backbone stream (median, range)"
    )
    parser.add_argument("--img-size", type=int, default=224)
    parser.add_argument("--batch-model", default="factorized_vit_small_patch16_224")
    parser.add_argument("--batch-img-size", type=int, default=224)
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--batch-frames", type=int, default=4)
    parser.add_argument("--batch-fraction", type=float, default=0.25)
    parser.add_argument("--bundle", help="a trained streaming bundle (.safetensors)")
    parser.add_argument("--bundle-streams", type=int, default=8, help="generated streams")
    parser.add_argument("--bundle-frames", type=int, default=64, help="frames per stream")
    parser.add_argument(
        "--bundle-fractions",
        type=float,
        nargs="*",
        help="top-fraction budgets for the bundle, besides keep-all (default: 0.5 0.25 0.1); "
        "given with no value, neither fractions nor keep-all run",
    )
    parser.add_argument(
        "--bundle-thresholds",
        type=threshold_arg,
        nargs="+",
        default=[],
        help="error-norm threshold budgets for the bundle, besides the fractions: one number "
        "for every gate, or QKV/PROJ/MLP (e.g. 0.75/1.5/1.5) for one per gate",
    )
    parser.add_argument(
        "--bundle-seed",
        type=int,
        default=100,
        help="stream seed of the first generated stream (the next ones follow)",
    )
    parser.add_argument(
        "--bundle-samples",
        type=int,
        default=1,
        help="disjoint samples of --bundle-streams streams each (consecutive seeds); rows pool "
        "them and list each with its own interval",
    )
    parser.add_argument(
        "--held-out",
        action="store_true",
        help=f"evaluate budgets already chosen: seeds from {HELDOUT_SEED} up only (without it, "
        f"a sweep's seeds stay below {HELDOUT_SEED})",
    )
    parser.add_argument(
        "--tuned-on",
        type=Path,
        nargs="*",
        default=[],
        help="the tuning reports (JSON) the budgets were chosen on: a run sharing a seed with "
        "one is refused",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--skip", nargs="*", default=[], choices=["backbones", "batching"])
    parser.add_argument("--out", default="docs/eventful_bench.json", help="JSON output")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    tuned_on = [report_seeds(json.loads(path.read_text())) for path in args.tuned_on]
    try:
        check_seeds(
            SeedPlan(args.bundle_seed, args.bundle_streams, args.bundle_samples),
            args.held_out,
            tuned_on,
        )
    except ValueError as exc:
        raise SystemExit(f"vidrec bench eventful: {exc}") from exc
    if args.threads:
        torch.set_num_threads(args.threads)
    results: dict[str, Any] = {
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "device": "cpu",
        },
        "config": {
            **vars(args),
            "bundle_thresholds": [threshold_label(t) for t in args.bundle_thresholds],
            "tuned_on": [str(p) for p in args.tuned_on],
            "tuned_on_seeds": [[r.start, r.stop - 1] for r in tuned_on],
        },
    }
    if "backbones" not in args.skip:
        stream = synthetic_stream(args.frames, args.img_size)
        rows = [
            r for name in args.models for r in backbone_rows(name, stream, BUDGETS, args.repeats)
        ]
        results["backbones"] = rows
        print("## backbones: dense vs eventful per frame (steady state, random weights)")
        print(
            table(
                rows,
                (
                    "model",
                    "budget",
                    "dense_ms",
                    "eventful_ms",
                    "speedup",
                    "speedup_range",
                    "gmacs",
                    "gmac_ratio",
                    "final_rel_err",
                ),
            )
        )
    if "batching" not in args.skip:
        budget = TopFraction(args.batch_fraction)
        rows = batching_rows(
            args.batch_model, args.sessions, args.batch_frames, budget, args.batch_img_size
        )
        results["batching"] = rows
        print("\n## batching: sessions in one step vs one by one")
        print(
            table(
                rows,
                ("model", "sessions", "budget", "batched_fps", "one_by_one_fps", "speedup"),
            )
        )
    if args.bundle:
        budgets = BUDGETS
        if args.bundle_fractions == []:
            budgets = {}
        elif args.bundle_fractions:
            budgets = {"keep-all": KEEP_ALL}
            budgets.update({f"top {100 * f:g}%": TopFraction(f) for f in args.bundle_fractions})
        budgets = {**budgets, **{threshold_label(t): t for t in args.bundle_thresholds}}
        rows = bundle_rows(
            args.bundle,
            budgets,
            args.bundle_streams,
            args.bundle_frames,
            args.bundle_seed,
            args.bundle_samples,
        )
        results["bundle"] = rows
        print("\n## streaming model: per-window labels on generated streams")
        print(
            table(
                rows,
                (
                    "budget",
                    "windows",
                    "top1_agreement",
                    "dense_top1",
                    "eventful_top1",
                    "top1_lost_points",
                    "top1_lost_ci95",
                    "gmacs_per_frame",
                    "gmac_ratio",
                    "wall_clock_ratio",
                ),
            )
        )
    else:
        print("\n## streaming model: skipped (no --bundle given)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwrote {out}")
    png = out.with_suffix(".png")
    if plot(results, png):
        print(f"wrote {png}")
    else:
        print("matplotlib not installed: no plot")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
