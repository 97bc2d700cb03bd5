"""The torch threads a worker runs with when VIDREC_TORCH_THREADS is not set."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.cli.serve_cmd import worker_env
from service.settings import Settings
from service.threads import available_cores, default_torch_threads


def test_threads_are_the_cores_shared_among_the_workers() -> None:
    assert default_torch_threads(1, cores=2) == 2
    assert default_torch_threads(2, cores=8) == 4
    assert default_torch_threads(3, cores=2) == 1  # never fewer than one
    # vidrec serve: its gateway and Redis keep a core of a small machine.
    assert default_torch_threads(1, cores=2, shared=True) == 1
    assert default_torch_threads(2, cores=8, shared=True) == 3
    assert default_torch_threads(1, cores=1, shared=True) == 1
    assert default_torch_threads(1, cores=32, shared=True) == 32
    with pytest.raises(ValueError, match="at least 1"):
        default_torch_threads(0)


def test_the_cgroup_quota_caps_the_cores(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("max 100000\n")
    assert available_cores(cpu_max) == affinity
    cpu_max.write_text("50000 100000\n")  # half a CPU: still one thread
    assert available_cores(cpu_max) == 1
    cpu_max.write_text(f"{(affinity + 8) * 100000} 100000\n")  # a quota above the affinity
    assert available_cores(cpu_max) == affinity
    assert available_cores(tmp_path / "absent") == affinity


def test_serve_gives_its_workers_a_thread_count_unless_one_is_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("VIDREC_TORCH_THREADS", raising=False)
    env = worker_env(Settings(), "redis://127.0.0.1:1/0", None, workers=2)
    assert env["VIDREC_TORCH_THREADS"] == str(default_torch_threads(2, shared=True))
    env = worker_env(Settings(torch_threads=3), "redis://127.0.0.1:1/0", None, workers=2)
    assert "VIDREC_TORCH_THREADS" not in env  # the setting reaches the workers as it came
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert "VIDREC_TORCH_THREADS" not in worker_env(Settings(), "redis://x:1/0", None)
