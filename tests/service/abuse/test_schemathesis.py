"""schemathesis against a running gateway's OpenAPI: no 5xx, and answers that match the schema
(status codes, content types, bodies, headers), for generated valid and invalid requests.

A real gateway process on a real Redis, with a stand-in worker that serves the models; the run
is bounded (few examples per operation, a fixed seed, a time budget) and loopback only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from edge_support import GatewayProcess, running_gateway
from gateway_support import StandInWorker

from service.settings import Settings

pytestmark = pytest.mark.integration

ST = str(Path(sys.executable).with_name("st"))
# What JSON Schema cannot say: whether the bytes are a video that decodes (415, 422), whether a
# URL of the right form is a usable source (400) and a budget object means something (422).
# Schema-valid requests may be refused for those reasons on these two operations only.
CONFIG = """
[[operations]]
include-name = "POST /v1/clips"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "401", "403", "404", "409", "413", "415", "422", "429", "503",
]

[[operations]]
include-name = "POST /v1/streams"
checks.positive_data_acceptance.expected-statuses = [
  "2xx", "400", "401", "403", "404", "409", "422", "429", "503",
]
"""
MAX_EXAMPLES = 8
TIME_BUDGET_S = 40


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    s = settings
    with running_gateway(
        redis_url=s.redis_url,
        key_prefix=s.key_prefix,
        heartbeat_ttl_s=s.heartbeat_ttl_s,
        heartbeat_interval_s=s.heartbeat_interval_s,
        wait_timeout_s=5,
        rate_limit_rps=0,  # schemathesis is one client sending as fast as it can
    ) as gw:
        yield gw


def test_the_openapi_schema_holds(
    gateway: GatewayProcess, make_worker: Callable[..., StandInWorker], tmp_path: Path
) -> None:
    make_worker()
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    command = [
        ST, "--config-file", str(config), "run", f"{gateway.url}/openapi.json",
        "--checks", "all",
        # Auth is off on loopback, so these two cannot hold; object ids are random hex.
        "--exclude-checks", "ignored_auth,object_level_authorization",
        "--max-examples", str(MAX_EXAMPLES),
        "--max-time", str(TIME_BUDGET_S),
        "--seed", "25",
        "--workers", "1",
        "--request-timeout", "20",
        "--generation-database", "none",
        "--no-color",
        "--warnings", "off",
        "--report-dir", str(tmp_path),
    ]  # fmt: skip
    env = {**os.environ, "SCHEMATHESIS_HOOKS": ""}
    run = subprocess.run(
        command, capture_output=True, text=True, timeout=TIME_BUDGET_S * 3, env=env, cwd=tmp_path
    )
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert gateway.alive()
