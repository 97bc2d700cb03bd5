"""Issue 25, item 1: a waiting upload answered after more than 5 s is answered, not a false 503.

The gateway waits on Redis in blocking slices of up to 5 s; the Redis client's read timeout must
outlast them. When the wait runs out, the answer is 202 with the job id, never an error that
loses it. A real gateway process on a real Redis, with a stand-in worker that answers slowly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from edge_support import GatewayProcess, running_gateway
from gateway_support import StandInWorker, default_answer

from service.queue import ClipTask
from service.settings import Settings

pytestmark = pytest.mark.integration

SLOW_ANSWER_S = 6.5  # longer than the 5 s blocking slice and the client library's 5 s default
WAIT_S = 9.0


def _slow(task: ClipTask) -> dict[str, Any]:
    time.sleep(SLOW_ANSWER_S)
    return default_answer(task)


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    with running_gateway(
        redis_url=settings.redis_url,
        key_prefix=settings.key_prefix,
        heartbeat_ttl_s=settings.heartbeat_ttl_s,
        heartbeat_interval_s=settings.heartbeat_interval_s,
        wait_timeout_s=WAIT_S,
    ) as gw:
        yield gw


def test_an_answer_slower_than_5_s_is_answered(
    gateway: GatewayProcess, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker(answer=_slow)
    with gateway.client() as http:
        start = time.monotonic()
        answer = http.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")})
        took = time.monotonic() - start
    assert answer.status_code == 200, answer.text
    assert answer.json()["labels"][0]["label"] == "waving"
    assert took >= SLOW_ANSWER_S


def test_a_wait_that_runs_out_answers_202_with_the_job_id(
    gateway: GatewayProcess, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    make_worker(consume=False)  # advertises the model, never takes the job
    with gateway.client() as http:
        answer = http.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")})
        assert answer.status_code == 202, answer.text
        body = answer.json()
        assert body["status"] == "queued"
        assert body["status_url"] == f"/v1/jobs/{body['job_id']}"
        assert http.get(body["status_url"]).json()["status"] == "queued"
