"""How many torch threads a worker runs when ``VIDREC_TORCH_THREADS`` is not set.

torch's own default is one thread per core of the host: in a container limited to two CPUs on a
64-core host that is 64 threads fighting over two cores, and with several workers (or the gateway
and Redis) on the same cores every worker still takes them all. On the 2-core machine of issue 24,
4 live streams at 15 fps dropped 53% of their frames under that default and none with one thread.
So the default is derived from the cores this process may actually use (its CPU affinity and the
cgroup's CPU quota) and the workers that share them, and ``vidrec serve``, whose gateway and
Redis share the machine with its workers, leaves them a core when there are few
(``vidrec bench live`` measured the choice on 2 cores: see docs/OPERATIONS.md).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")
# With fewer cores than this per worker, `vidrec serve` leaves one to its gateway and Redis.
SHARED_UNTIL_CORES = 8


def available_cores(cpu_max: Path = CGROUP_CPU_MAX) -> int:
    """Cores this process may run on: its CPU affinity, capped by the cgroup's CPU quota
    (``cpu.max``, cgroup v2) when one is set; at least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    cores = cores or 1
    try:
        quota, period = cpu_max.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass  # no cgroup v2 quota here
    return max(1, cores)


def default_torch_threads(workers: int = 1, cores: int | None = None, shared: bool = False) -> int:
    """Intra-op torch threads for each of ``workers`` workers on ``cores`` cores.

    Args:
        workers: Workers sharing the cores.
        cores: Cores available (default: :func:`available_cores`).
        shared: The gateway and Redis run on the same cores (``vidrec serve``): on a small
            machine one core is left to them.
    """
    if workers < 1:
        raise ValueError(f"workers must be at least 1, got {workers}")
    cores = available_cores() if cores is None else cores
    if shared and cores < SHARED_UNTIL_CORES * workers:
        cores -= 1
    return max(1, cores // workers)
