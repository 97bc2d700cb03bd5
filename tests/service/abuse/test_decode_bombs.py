"""Issue 25, item 5: a clip that is small to send but costly to decode is refused by a limit on
the work (pixels times frames), checked by the gateway's probe and again while the worker
decodes, and the worker decodes uploads in a child process held to CPU-time and memory budgets.

The bomb is the issue's: 600 frames of 3840x2160 in about 44 KB.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
from edge_support import GatewayProcess, decode_bomb, running_gateway
from gateway_support import StandInWorker

from service.ingest import Sampling, probe_clip
from service.ingest.errors import DecodeTooCostlyError
from service.settings import Settings
from service.worker.decode import clip_decoder

pytestmark = pytest.mark.integration

UNBOUNDED_WORK = 10**13  # lifts the pixel-frames limit, to reach the decoder's own budgets


@pytest.fixture(scope="module")
def bomb() -> bytes:
    data = decode_bomb()
    assert len(data) < 100_000
    return data


def test_the_probe_refuses_the_bomb_by_its_work(bomb: bytes) -> None:
    limits = Settings().clip_limits()
    assert limits.max_pixels >= 3840 * 2160 and limits.max_frames >= 600  # passes the old limits
    with pytest.raises(DecodeTooCostlyError, match="3840x2160"):
        probe_clip(bomb, limits)


def test_the_worker_decoder_checks_the_work_again(bomb: bytes) -> None:
    # The worker does not trust the gateway's probe: its decoder refuses the bomb by itself,
    # isolated or not (and counts the frames it decodes, should they be larger than declared).
    for isolated in (True, False):
        settings = Settings(decode_isolated=isolated)
        decode = clip_decoder(settings)
        with pytest.raises(DecodeTooCostlyError):
            decode(bomb, Sampling(num_frames=8), short_side=None)


def test_the_isolated_decoder_is_held_to_its_cpu_time(bomb: bytes) -> None:
    settings = Settings(max_clip_pixel_frames=UNBOUNDED_WORK, decode_cpu_seconds=1)
    decode = clip_decoder(settings)
    start = time.monotonic()
    # One keyframe: the last of 8 frames sampled uniformly needs ~560 frames decoded.
    with pytest.raises(DecodeTooCostlyError, match="CPU time"):
        decode(bomb, Sampling(num_frames=8), short_side=None)
    assert time.monotonic() - start < 20


def test_the_isolated_decoder_is_held_to_its_memory(bomb: bytes) -> None:
    settings = Settings(max_clip_pixel_frames=UNBOUNDED_WORK, decode_memory_bytes=64 * 2**20)
    with pytest.raises(DecodeTooCostlyError, match="MiB of memory"):
        clip_decoder(settings)(bomb, Sampling(num_frames=8), short_side=None)


def test_a_normal_clip_decodes_isolated_by_default(mp4: bytes) -> None:
    decoded = clip_decoder(Settings())(mp4, Sampling(num_frames=8), short_side=32)
    assert decoded.views.shape[:2] == (1, 8) and min(decoded.views.shape[2:4]) == 32


@pytest.fixture
def gateway(settings: Settings) -> Iterator[GatewayProcess]:
    s = settings
    with running_gateway(
        redis_url=s.redis_url,
        key_prefix=s.key_prefix,
        heartbeat_ttl_s=s.heartbeat_ttl_s,
        heartbeat_interval_s=s.heartbeat_interval_s,
    ) as gw:
        yield gw


def test_the_gateway_refuses_the_bomb_and_answers_a_normal_clip(
    gateway: GatewayProcess,
    make_worker: Callable[..., StandInWorker],
    bomb: bytes,
    mp4: bytes,
) -> None:
    make_worker()
    with gateway.client() as http:
        start = time.monotonic()
        answer = http.post("/v1/clips", files={"file": ("bomb.mp4", bomb, "video/mp4")})
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "decode_too_costly"
        assert time.monotonic() - start < 10  # the probe does not decode the bomb
        normal = http.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")})
        assert normal.status_code == 200, normal.text
