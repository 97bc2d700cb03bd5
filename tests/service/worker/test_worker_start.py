"""A worker that cannot start says why and exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from worker_support import worker_settings

from service.settings import Settings
from service.worker import run_worker


def test_run_worker_refuses_settings_it_cannot_use(
    redis_url: str, key_prefix: str, models_dir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert run_worker(Settings(redis_url=None, models_dir=models_dir)) == 2
    assert "VIDREC_REDIS_URL" in caplog.text
    assert run_worker(worker_settings(redis_url, key_prefix, models_dir, models=["nope"])) == 2
    assert "unknown model 'nope'" in caplog.text
    assert run_worker(worker_settings(redis_url, key_prefix, models_dir / "missing")) == 2
    assert "no model directory" in caplog.text


@pytest.mark.integration
def test_the_module_exits_2_on_a_bad_variable() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    env |= {"VIDREC_REDIS_URL": "http://nowhere", "OMP_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "service.worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2
    # The variable as it is set, not pydantic's field name.
    assert "bad settings: VIDREC_REDIS_URL:" in result.stderr and "must start with" in result.stderr
