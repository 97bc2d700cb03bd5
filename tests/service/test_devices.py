"""Which device and how many torch threads each worker of ``vidrec serve`` gets, without a GPU:
the assignment is a pure function of the GPU count and the settings."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from service.devices import WorkerPlan, describe_plan, plan_workers, visible_gpus


def devices(plans: list[WorkerPlan]) -> list[str]:
    return [p.device for p in plans]


@pytest.mark.parametrize("device", ["auto", "cuda"])
def test_one_worker_per_gpu_pinned_in_order(device: str) -> None:
    plans = plan_workers(device, gpus=4, cores=64)
    assert devices(plans) == ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]
    assert [p.index for p in plans] == [1, 2, 3, 4]
    # 64 cores for 4 workers: plenty (8 a worker or more), so no core is held back.
    assert {p.torch_threads for p in plans} == {16}


def test_a_set_worker_count_is_dealt_round_robin_over_the_gpus() -> None:
    assert devices(plan_workers("auto", gpus=2, cores=16, workers=5)) == [
        "cuda:0",
        "cuda:1",
        "cuda:0",
        "cuda:1",
        "cuda:0",
    ]
    assert devices(plan_workers("auto", gpus=8, cores=16, workers=2)) == ["cuda:0", "cuda:1"]


def test_without_gpus_the_configured_count_runs_on_the_configured_device() -> None:
    assert devices(plan_workers("auto", gpus=0, cores=2)) == ["auto"]
    assert devices(plan_workers("cpu", gpus=0, cores=8, workers=3)) == ["cpu"] * 3
    # cpu and mps are never spread over GPUs, even where some are visible.
    assert devices(plan_workers("cpu", gpus=2, cores=8)) == ["cpu"]
    assert devices(plan_workers("mps", gpus=0, cores=8, workers=2)) == ["mps", "mps"]


def test_a_named_gpu_pins_every_worker_to_it() -> None:
    assert devices(plan_workers("cuda:1", gpus=4, cores=8)) == ["cuda:1"]
    assert devices(plan_workers("cuda:1", gpus=4, cores=8, workers=2)) == ["cuda:1", "cuda:1"]


def test_threads_are_the_cores_shared_among_the_workers() -> None:
    # The 2-core machine: one core left to the gateway and Redis, one for the worker.
    assert plan_workers("auto", gpus=0, cores=2)[0].torch_threads == 1
    assert [p.torch_threads for p in plan_workers("cpu", gpus=0, cores=2, workers=2)] == [1, 1]
    # 12 cores, 2 GPU workers: fewer than 8 a worker, so one is left: 11 // 2; 16 cores: 8 each.
    assert {p.torch_threads for p in plan_workers("auto", gpus=2, cores=12)} == {5}
    assert {p.torch_threads for p in plan_workers("auto", gpus=2, cores=16)} == {8}
    # Threads the user set are left alone.
    plans = plan_workers("auto", gpus=2, cores=16, threads_set=True)
    assert {p.torch_threads for p in plans} == {None}
    assert plans[0].env() == {"VIDREC_DEVICE": "cuda:0"}
    assert plan_workers("auto", gpus=2, cores=16)[1].env() == {
        "VIDREC_DEVICE": "cuda:1",
        "VIDREC_TORCH_THREADS": "8",
    }


def test_bad_counts_are_refused() -> None:
    with pytest.raises(ValueError, match="workers must be at least 1, got 0"):
        plan_workers("auto", gpus=1, cores=4, workers=0)
    with pytest.raises(ValueError, match="gpus must not be negative"):
        plan_workers("auto", gpus=-1, cores=4)
    with pytest.raises(ValueError, match="cores must be at least 1"):
        plan_workers("auto", gpus=0, cores=0)


def test_the_start_up_line_names_each_device() -> None:
    assert describe_plan(plan_workers("auto", gpus=2, cores=64)) == (
        "2 workers: 1 on cuda:0, 1 on cuda:1 (32 torch threads each)"
    )
    assert describe_plan(plan_workers("cpu", gpus=0, cores=2)) == (
        "1 worker: 1 on cpu (1 torch thread each)"
    )
    assert describe_plan(plan_workers("cpu", gpus=0, cores=2, threads_set=True)) == (
        "1 worker: 1 on cpu"
    )


def test_no_gpu_is_visible_here_and_other_devices_are_not_probed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This machine has no GPU: the count is 0 (what torch says in a child process agrees)."""
    said = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.cuda.device_count())"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert visible_gpus("auto") == int(said.stdout) == 0
    assert visible_gpus("cpu") == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpus("cuda") == 0
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
