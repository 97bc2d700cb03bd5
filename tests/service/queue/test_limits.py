"""Rate limits and quotas against a real Redis (the machine's and the embedded 6.2)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
import redis.asyncio

from service.keys import Keys
from service.queue import Holdings, RateLimiter

pytestmark = pytest.mark.integration


def test_a_bucket_allows_its_burst_then_refuses_with_a_wait(arun: Any, keys: Keys) -> None:
    async def go(client: redis.asyncio.Redis) -> tuple[list[bool], int, list[bool], bool]:
        limiter = RateLimiter(client, keys, rate=0.5, burst=3)
        first = [(await limiter.take("key:a")).allowed for _ in range(4)]
        refused = await limiter.take("key:a")
        other = [(await limiter.take("key:b")).allowed for _ in range(3)]
        ttl = await client.pttl(keys.rate("key:a"))
        return first, refused.retry_after_s, other, 0 < ttl <= 7000

    first, retry_after, other, expires = arun(go)
    assert first == [True, True, True, False]
    # An empty bucket at 0.5 tokens/s has a token again within 2 s.
    assert retry_after == 2
    assert other == [True, True, True]  # buckets are per caller
    assert expires  # burst / rate + 1 s: an idle bucket is dropped once it would be full


def test_a_bucket_refills_at_its_rate(arun: Any, keys: Keys) -> None:
    async def go(client: redis.asyncio.Redis) -> tuple[bool, bool]:
        limiter = RateLimiter(client, keys, rate=20.0, burst=1)
        assert (await limiter.take("addr:127.0.0.1")).allowed
        empty = (await limiter.take("addr:127.0.0.1")).allowed
        await asyncio.sleep(0.2)  # 4 tokens' worth, capped at the burst of 1
        again = (await limiter.take("addr:127.0.0.1")).allowed
        return empty, again

    empty, again = arun(go)
    assert (empty, again) == (False, True)


def test_concurrent_takes_never_exceed_the_burst(arun: Any, keys: Keys) -> None:
    async def go(client: redis.asyncio.Redis) -> int:
        limiter = RateLimiter(client, keys, rate=0.01, burst=5)
        verdicts = await asyncio.gather(*(limiter.take("key:many") for _ in range(40)))
        return sum(v.allowed for v in verdicts)

    assert arun(go) == 5


def test_holdings_bound_sessions_and_forget_the_ended_ones(
    arun: Any, keys: Keys, r: redis.Redis
) -> None:
    r.hset(keys.session("s1"), "state", "running")
    r.hset(keys.session("s2"), "state", "opening")

    async def go(client: redis.asyncio.Redis) -> list[object]:
        holdings = Holdings(client, keys)
        seen: list[object] = []
        for session_id in ("s1", "s2"):
            token = await holdings.reserve("rtsp", "key:a", 2)
            assert token is not None
            await holdings.confirm("rtsp", "key:a", token, session_id)
        seen.append(await holdings.reserve("rtsp", "key:a", 2))  # full
        seen.append(await holdings.reserve("live", "key:a", 2) is not None)  # another kind
        seen.append(await holdings.reserve("rtsp", "key:b", 2) is not None)  # another caller
        r.hset(keys.session("s1"), "state", "closed")  # ended on a worker
        seen.append(await holdings.reserve("rtsp", "key:a", 2) is not None)
        r.delete(keys.session("s2"))  # expired
        seen.append(await holdings.reserve("rtsp", "key:a", 2) is not None)
        seen.append(await holdings.reserve("rtsp", "key:a", 2))  # two reservations held
        return seen

    assert arun(go) == [None, True, True, True, True, None]


def test_jobs_are_held_until_done_or_failed(arun: Any, keys: Keys, r: redis.Redis) -> None:
    async def go(client: redis.asyncio.Redis) -> list[object]:
        holdings = Holdings(client, keys)
        seen: list[object] = []
        for job_id, state in (("j1", "queued"), ("j2", "running")):
            r.hset(keys.job(job_id), "state", state)
            token = await holdings.reserve("clips", "addr:10.0.0.1", 2)
            assert token is not None
            await holdings.confirm("clips", "addr:10.0.0.1", token, job_id)
        seen.append(await holdings.reserve("clips", "addr:10.0.0.1", 2))
        r.hset(keys.job("j2"), "state", "done")
        token = await holdings.reserve("clips", "addr:10.0.0.1", 2)
        seen.append(token is not None)
        assert token is not None
        await holdings.release("clips", "addr:10.0.0.1", token)  # not created after all
        seen.append(await holdings.held("clips", "addr:10.0.0.1"))  # j1 only
        r.hset(keys.job("j1"), "state", "failed")
        seen.append(await holdings.reserve("clips", "addr:10.0.0.1", 1) is not None)
        return seen

    assert arun(go) == [None, True, 1, True]


def test_an_unconfirmed_reservation_lapses(arun: Any, keys: Keys) -> None:
    async def go(client: redis.asyncio.Redis) -> tuple[object, object]:
        holdings = Holdings(client, keys, pending_ms=200)
        assert await holdings.reserve("live", "key:a", 1) is not None  # its gateway died
        full = await holdings.reserve("live", "key:a", 1)
        await asyncio.sleep(0.3)
        return full, await holdings.reserve("live", "key:a", 1)

    full, later = arun(go)
    assert full is None and isinstance(later, str)


def test_an_unknown_kind_is_refused(arun: Any, keys: Keys) -> None:
    async def go(client: redis.asyncio.Redis) -> None:
        await Holdings(client, keys).reserve("uploads", "key:a", 1)

    with pytest.raises(ValueError, match="kind must be one of"):
        arun(go)
