"""Time one training step (forward, backward, AdamW) and the making of its batch, for planning
how long a bundle takes to train.

A step runs on a batch of generated clips at the model's size. Each case runs ``--warmup``
untimed steps, then ``--steps`` timed ones; the table gives the min and the median, and the
milliseconds to generate and preprocess one batch (done on a background thread while a step
runs). Prints a table and writes JSON. Usage::

    python benchmarks/train_step.py [bench-results/train_step.json] \\
        [--model tokshift_vit_tiny_patch16_224] [--depths 12 4] [--threads 1 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from model_core import create_model
from model_core.data import CLASS_NAMES, ClipSpec
from model_core.training import TrainConfig, param_groups, resolve_device


def cpu_name() -> str:
    """The CPU's model name where Linux tells it, else the architecture."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_case(
    model_name: str,
    depth: int,
    config: TrainConfig,
    device: torch.device,
    warmup: int,
    steps: int,
) -> dict[str, Any]:
    """Step and batch times of one model depth, in milliseconds."""
    torch.manual_seed(0)
    model = create_model(
        model_name,
        img_size=config.spec.size,
        num_frames=config.spec.frames,
        depth=depth,
        labels=list(CLASS_NAMES),
        crop_pct=1.0,
    ).to(device)
    optimizer = torch.optim.AdamW(param_groups(model, 0.05), lr=1e-4)
    source = config.batches(model)
    plans = source.plan_epoch(0)
    batch_ms = []
    for plan in plans[:3]:
        start = time.perf_counter()
        source.make(*plan)
        batch_ms.append((time.perf_counter() - start) * 1e3)
    batch = source.make(*plans[0])
    inputs, labels = batch.inputs.to(device), batch.labels.to(device)
    amp = config.amp and device.type == "cuda"
    step_ms = []
    for i in range(warmup + steps):
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = model(inputs)
        loss = F.cross_entropy(logits.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        _sync(device)
        if i >= warmup:
            step_ms.append((time.perf_counter() - start) * 1e3)
    return {
        "model": model_name,
        "depth": depth,
        "params_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 3),
        "step_ms_min": round(min(step_ms), 1),
        "step_ms_median": round(statistics.median(step_ms), 1),
        "batch_ms_median": round(statistics.median(batch_ms), 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=Path("bench-results/train_step.json"))
    parser.add_argument("--model", default="tokshift_vit_tiny_patch16_224")
    parser.add_argument("--depths", type=int, nargs="+", default=[12, 4])
    parser.add_argument("--threads", type=int, nargs="+", default=[torch.get_num_threads()])
    parser.add_argument("--img-size", type=int, default=112)
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    config = TrainConfig(
        clips=3 * args.batch_size,
        batch_size=args.batch_size,
        amp=device.type == "cuda",
        spec=ClipSpec(frames=args.frames, size=args.img_size),
    )
    rows = []
    for threads in args.threads:
        torch.set_num_threads(threads)
        for depth in args.depths:
            row = time_case(args.model, depth, config, device, args.warmup, args.steps)
            rows.append({**row, "threads": threads})
            print(
                f"{row['model']}  depth {depth:2d}  threads {threads}  "
                f"step min {row['step_ms_min']:8.1f} ms  median {row['step_ms_median']:8.1f} ms"
                f"  batch {row['batch_ms_median']:6.1f} ms",
                flush=True,
            )
    result = {
        "device": str(device)
        + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
        "cpu": cpu_name(),
        "torch": torch.__version__,
        "img_size": args.img_size,
        "frames": args.frames,
        "batch_size": args.batch_size,
        "amp": config.amp,
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
