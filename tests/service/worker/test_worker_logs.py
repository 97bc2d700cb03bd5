"""A worker process logs one JSON object per line with ``VIDREC_LOG_FORMAT=json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_a_worker_writes_json_lines(redis_url: str, key_prefix: str, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env |= {
        "VIDREC_REDIS_URL": redis_url,
        "VIDREC_KEY_PREFIX": key_prefix,
        "VIDREC_MODELS_DIR": str(tmp_path / "missing"),
        "VIDREC_LOG_FORMAT": "json",
        "OMP_NUM_THREADS": "1",
    }
    result = subprocess.run(
        [sys.executable, "-m", "service.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines() if line.strip()]
    assert records, "the worker logged nothing"
    failure = records[-1]
    assert failure["level"] == "error" and failure["logger"] == "service.worker.process"
    assert (
        "worker cannot start" in failure["message"] and "no model directory" in failure["message"]
    )
    assert set(failure) >= {"time", "request_id"}
