"""The pool on GPUs (marker ``gpu``: run on a machine with CUDA, deselected elsewhere): ``auto``
picks bfloat16 where it is native, the shipped bundles in bfloat16 on a GPU keep the CPU's float32
top labels and stream live frames, and ``vidrec serve`` with K visible GPUs starts K workers, each
pinned to its own ``cuda:N``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from serve_support import ServeProcess, serve_env  # noqa: E402

from model_core.data import HELDOUT_SEEDS, NUM_CLASSES, ClipSpec, generate_clip  # noqa: E402
from service.devices import visible_gpus  # noqa: E402
from service.inference import ClipClassifier, LiveRunner, ModelCatalog  # noqa: E402
from service.inference.precision import resolve_dtype  # noqa: E402
from service.keys import Keys  # noqa: E402
from service.queue._codec import text  # noqa: E402
from service.redis_conn import sync_client  # noqa: E402

pytestmark = pytest.mark.gpu

MODELS = "tokshift_tiny_motion112,factorized_causal_tiny_motion112"


def test_auto_is_bfloat16_exactly_where_the_gpu_computes_it_natively() -> None:
    assert torch.cuda.device_count() >= 1
    for index in range(torch.cuda.device_count()):
        device = torch.device(f"cuda:{index}")
        native = torch.cuda.get_device_capability(device)[0] >= 8
        assert resolve_dtype("auto", device) is (torch.bfloat16 if native else torch.float32)


def test_bfloat16_on_the_gpu_keeps_the_cpu_float32_labels() -> None:
    cpu = ModelCatalog.load(None, device="cpu", dtype="float32")
    gpu = ModelCatalog.load(None, device="cuda:0", dtype="bfloat16")
    assert gpu.device.type == "cuda" and gpu.dtype is torch.bfloat16
    clips = [generate_clip(HELDOUT_SEEDS[i], spec=ClipSpec()).frames for i in range(NUM_CLASSES)]
    for entry in gpu:
        probs = ClipClassifier(gpu).probabilities(entry, clips)
        assert probs.device.type == "cpu" and probs.dtype is torch.float32
        want = ClipClassifier(cpu).classify(entry.name, clips, top_k=1)
        have = ClipClassifier(gpu).classify(entry.name, clips, top_k=1)
        assert [a.labels[0][0] for a in have] == [a.labels[0][0] for a in want], entry.name
    live = gpu.live_default
    assert live is not None
    runner = LiveRunner(live, capacity=32, stride=4)
    frames = np.random.default_rng(0).integers(0, 255, (8, 32, 120, 160, 3), dtype=np.uint8)
    for index in range(32):
        runner.open(f"s{index}", {"fraction": 0.25})
    for step in frames:
        events = runner.step({f"s{i}": frame for i, frame in enumerate(step)})
    assert all(event is not None and len(event.labels) == 5 for event in events.values())


def test_serve_starts_one_worker_per_gpu_pinned_to_it() -> None:
    count = torch.cuda.device_count()
    assert visible_gpus("auto") == count >= 1
    server = ServeProcess(serve_env(None, models=MODELS))
    try:
        server.wait_ready()
        devices = ", ".join(f"1 on cuda:{i}" for i in range(count))
        assert f"{count} worker{'s' if count > 1 else ''}: {devices}" in server.output
        server.wait_for(rf"worker {count} ready")
        url = server.wait_for(r"embedded Redis on (unix://\S+)").group(1)
        client = sync_client(url)
        keys = Keys()
        try:
            deadline = time.monotonic() + 60
            while len(ids := client.smembers(keys.workers)) < count:
                assert time.monotonic() < deadline, f"fewer than {count} workers registered"
                time.sleep(0.2)
            beats = [client.hgetall(keys.worker(text(i))) for i in ids]
        finally:
            client.close()
        assert sorted(text(b[b"device"]) for b in beats) == [f"cuda:{i}" for i in range(count)]
        expected = {
            "bfloat16" if torch.cuda.get_device_capability(i)[0] >= 8 else "float32"
            for i in range(count)
        }
        assert {text(b[b"dtype"]) for b in beats} == expected
    finally:
        assert server.stop() == 0, server.output
