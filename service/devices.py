"""Which device each worker of ``vidrec serve`` runs on, and with how many torch threads.

One worker per GPU: a worker steps all its live sessions in one batched forward, so a second
worker on the same GPU only adds a second copy of the weights and contends for the same SMs,
and a worker spread over two GPUs would have to move its sessions' caches between them. So with
``VIDREC_DEVICE=auto`` (or ``cuda``) and K visible GPUs, ``vidrec serve`` starts K workers
pinned to ``cuda:0`` .. ``cuda:K-1``; on a machine without GPUs it starts ``VIDREC_WORKERS``
(default 1). A worker count set by hand is dealt round-robin over the GPUs.

:func:`plan_workers` is pure (device count and settings in, assignment out), so it is tested
without a GPU; :func:`visible_gpus` counts the GPUs without importing torch into the gateway's
process (torch is asked in a child process, and only where a GPU driver is present).
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from service.threads import default_torch_threads

# Device nodes of the GPU drivers torch's CUDA API can use (NVIDIA; AMD ROCm; WSL2's GPU).
_DRIVER_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")
_PROBE_CODE = "import torch; print(torch.cuda.device_count())"
PROBE_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class WorkerPlan:
    """One worker of ``vidrec serve``.

    Attributes:
        index: Its number, from 1 (as serve's messages name it).
        device: Its ``VIDREC_DEVICE``: ``cuda:N`` when pinned to a GPU, else the configured one.
        torch_threads: Its ``VIDREC_TORCH_THREADS``; None where the user set the threads
            (``VIDREC_TORCH_THREADS`` or ``OMP_NUM_THREADS``) and they are left alone.
    """

    index: int
    device: str
    torch_threads: int | None

    def env(self) -> dict[str, str]:
        """The variables this worker gets on top of the pool's environment."""
        env = {"VIDREC_DEVICE": self.device}
        if self.torch_threads is not None:
            env["VIDREC_TORCH_THREADS"] = str(self.torch_threads)
        return env


def plan_workers(
    device: str,
    gpus: int,
    cores: int,
    workers: int | None = None,
    threads_set: bool = False,
) -> list[WorkerPlan]:
    """The workers ``vidrec serve`` starts and where each one runs.

    Args:
        device: ``VIDREC_DEVICE``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.
        gpus: CUDA devices visible to the workers (:func:`visible_gpus`).
        cores: CPU cores the machine gives the service (``service.threads.available_cores``).
        workers: ``VIDREC_WORKERS`` / ``--workers``; None: one per GPU with ``auto`` or
            ``cuda`` and GPUs visible, else 1.
        threads_set: The user set the torch threads; the plan leaves them alone.

    Returns:
        One plan per worker, in order: with ``auto`` or ``cuda`` and GPUs, worker ``i`` (from 0)
        on ``cuda:{i % gpus}``; otherwise every worker on ``device`` (``cuda:N`` pins them all
        to that GPU). Threads: the cores shared among the workers, one left to the gateway and
        Redis on a small machine (:func:`service.threads.default_torch_threads`); a GPU
        worker's threads preprocess and decode, so it gets the same share.

    Raises:
        ValueError: ``workers`` or ``cores`` below 1, or a negative ``gpus``.
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    if gpus < 0:
        raise ValueError(f"gpus must not be negative, got {gpus}")
    if cores < 1:
        raise ValueError(f"cores must be at least 1, got {cores}")
    spread = device in ("auto", "cuda") and gpus > 0
    count = workers if workers is not None else (gpus if spread else 1)
    threads = None if threads_set else default_torch_threads(count, cores, shared=True)
    return [
        WorkerPlan(i + 1, f"cuda:{i % gpus}" if spread else device, threads) for i in range(count)
    ]


def describe_plan(plans: list[WorkerPlan]) -> str:
    """One line for serve's start-up: ``2 workers: 1 on cuda:0, 1 on cuda:1 (6 torch threads
    each)``."""
    by_device: dict[str, int] = {}
    for plan in plans:
        by_device[plan.device] = by_device.get(plan.device, 0) + 1
    places = ", ".join(f"{n} on {device}" for device, n in by_device.items())
    threads = plans[0].torch_threads if plans else None
    each = f" ({threads} torch thread{'s' if threads != 1 else ''} each)" if threads else ""
    return f"{len(plans)} worker{'s' if len(plans) != 1 else ''}: {places}{each}"


def visible_gpus(device: str, timeout_s: float = PROBE_TIMEOUT_S) -> int:
    """CUDA devices the workers will see, for ``device``; 0 when it does not matter.

    Only ``auto`` and ``cuda`` spread workers over GPUs, so other devices are not probed. A
    machine with no GPU driver node (and ``CUDA_VISIBLE_DEVICES`` set empty or ``-1``) has
    none; otherwise a child process asks torch (``torch.cuda.device_count()``, which honours
    ``CUDA_VISIBLE_DEVICES``), so the gateway's own process never imports torch.
    """
    if device not in ("auto", "cuda"):
        return 0
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return 0
    if not any(Path(node).exists() for node in _DRIVER_NODES):
        return 0
    try:
        done = subprocess.run(
            [sys.executable, "-c", _PROBE_CODE],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )
        return max(0, int(done.stdout.strip().splitlines()[-1])) if done.returncode == 0 else 0
    except (OSError, subprocess.TimeoutExpired, ValueError, IndexError):
        return 0  # the workers then resolve the device themselves
