"""``vidrec serve`` starts the workers its plan names (``service/devices.py``): the count from
``VIDREC_WORKERS``, each with its device and torch threads, shown in its start-up line and in the
workers' own heartbeats. (Pinning to ``cuda:N`` needs GPUs; the plan is tested without them in
tests/service/test_devices.py.)"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

from serve_support import ServeProcess, serve_env  # noqa: E402

from service.keys import Keys  # noqa: E402
from service.queue._codec import text  # noqa: E402
from service.redis_conn import sync_client  # noqa: E402
from service.threads import available_cores, default_torch_threads  # noqa: E402

pytestmark = pytest.mark.integration


def test_vidrec_workers_sets_the_count_and_each_worker_gets_its_plan(tiny_models: Path) -> None:
    env = serve_env(tiny_models, workers="2", device="cpu")
    # No threads set: the plan derives them from the cores and the two workers.
    del env["VIDREC_TORCH_THREADS"], env["OMP_NUM_THREADS"]
    threads = default_torch_threads(2, available_cores(), shared=True)
    server = ServeProcess(env)
    try:
        server.wait_ready()
        plural = "s" if threads != 1 else ""
        assert f"2 workers: 2 on cpu ({threads} torch thread{plural} each)" in server.output
        assert "VIDREC_DTYPE=auto" in server.output
        server.wait_for(r"worker 2 ready")
        url = server.wait_for(r"embedded Redis on (unix://\S+)").group(1)
        client = sync_client(url)
        keys = Keys()
        try:
            deadline = time.monotonic() + 30
            while len(ids := client.smembers(keys.workers)) < 2:
                assert time.monotonic() < deadline, "two workers never registered"
                time.sleep(0.2)
            beats = [client.hgetall(keys.worker(text(i))) for i in ids]
        finally:
            client.close()
        for beat in beats:
            assert beat[b"device"] == b"cpu"
            assert beat[b"dtype"] == b"float32"  # auto on a CPU
            assert json.loads(beat[b"torch_threads"]) == threads
    finally:
        assert server.stop() == 0, server.output
