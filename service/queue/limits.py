"""Rate limits and quotas in Redis, shared by every gateway replica.

- :class:`RateLimiter`: a token bucket per key (or client address): ``rate`` tokens a second up
  to ``burst``; a request takes one. One Lua script reads, refills and takes atomically, with the
  server's clock, so replicas with skewed clocks still share one bucket.
- :class:`Holdings`: how many sessions or jobs of one kind a key holds at once. A sorted set
  records what it holds; before a new one is created a place is *reserved* (a pending member
  that lapses after :data:`HOLD_PENDING_MS`), then *confirmed* under the session's or job's id.
  Each reservation first drops the members that are over: a session whose hash is gone or in a
  final state, a job that is done or failed. So nothing has to release a place when a session
  ends on a worker, a job is answered or a gateway dies: the next reservation notices.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import redis.asyncio

from service.keys import HOLD_PENDING_MS, HOLDINGS_TTL_S, Keys

# KEYS: bucket. ARGV: rate (tokens/s), burst. Returns {allowed 0|1, wait ms until one token}.
_TAKE = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1])
local ts = tonumber(state[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate / 1000)
local allowed = 0
local wait = 0
if tokens >= 1 then
  tokens = tokens - 1
  allowed = 1
else
  wait = math.ceil((1 - tokens) * 1000 / rate)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)
return {allowed, wait}
"""

# KEYS: holdings. ARGV: limit, pending ms, token, item key prefix, item key suffix, holdings ttl
# s, then the final states. Members are item ids (held while the item's hash exists and its
# state is not final) or 'pending:<token>' (held until its score, a time in ms, passes).
# Returns {reserved 0|1, members held}.
_RESERVE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local finals = {}
for i = 7, #ARGV do finals[ARGV[i]] = true end
local members = redis.call('ZRANGE', KEYS[1], 0, -1, 'WITHSCORES')
for i = 1, #members, 2 do
  local member = members[i]
  if string.sub(member, 1, 8) == 'pending:' then
    if tonumber(members[i + 1]) < now then redis.call('ZREM', KEYS[1], member) end
  else
    local state = redis.call('HGET', ARGV[4] .. member .. ARGV[5], 'state')
    if (not state) or finals[state] then redis.call('ZREM', KEYS[1], member) end
  end
end
local held = redis.call('ZCARD', KEYS[1])
if held >= tonumber(ARGV[1]) then return {0, held} end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), 'pending:' .. ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[6])
return {1, held + 1}
"""

# KEYS: holdings. ARGV: token, item id. Swaps the reservation for the item, if still reserved.
_CONFIRM = """
if redis.call('ZREM', KEYS[1], 'pending:' .. ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[1], 0, ARGV[2])
  return 1
end
return 0
"""

# What each kind of holding is, in the key layout: the item hash and its final states.
_ITEMS: dict[str, tuple[str, tuple[str, ...]]] = {
    "live": ("session", ("closed", "failed")),
    "rtsp": ("session", ("closed", "failed")),
    "clips": ("job", ("done", "failed")),
}
KINDS = tuple(_ITEMS)


@dataclass(frozen=True)
class Verdict:
    """What a limit said.

    Attributes:
        allowed: Whether the request may go on.
        retry_after_s: When refused, whole seconds until it may be tried again (at least 1).
    """

    allowed: bool
    retry_after_s: int = 0


class RateLimiter:
    """Token buckets per key or client address.

    Args:
        redis: An asyncio client.
        keys: Key names.
        rate: Tokens added per second (requests per second sustained).
        burst: Bucket size (requests at once).
    """

    def __init__(self, redis: redis.asyncio.Redis, keys: Keys, rate: float, burst: int) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.keys = keys
        self.rate = rate
        self.burst = burst
        self._take = redis.register_script(_TAKE)

    async def take(self, who: str) -> Verdict:
        """Takes one token from ``who``'s bucket.

        Raises:
            redis.RedisError: Redis is unreachable.
        """
        allowed, wait_ms = await self._take(
            keys=[self.keys.rate(who)], args=[self.rate, self.burst]
        )
        if int(allowed):
            return Verdict(True)
        return Verdict(False, max(1, math.ceil(int(wait_ms) / 1000)))


class Holdings:
    """Bounds on what one key or client address holds at once (sessions, queued jobs).

    Args:
        redis: An asyncio client.
        keys: Key names.
        pending_ms: How long a reservation holds a place unless confirmed.
    """

    def __init__(
        self, redis: redis.asyncio.Redis, keys: Keys, pending_ms: int = HOLD_PENDING_MS
    ) -> None:
        self.redis = redis
        self.keys = keys
        self.pending_ms = pending_ms
        self._reserve = redis.register_script(_RESERVE)
        self._confirm = redis.register_script(_CONFIRM)

    async def reserve(self, kind: str, who: str, limit: int) -> str | None:
        """Takes a place for a ``kind`` item about to be created; returns its token, or ``None``
        when ``who`` already holds ``limit`` of them.

        Raises:
            ValueError: An unknown kind.
            redis.RedisError: Redis is unreachable.
        """
        if kind not in _ITEMS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        item, finals = _ITEMS[kind]
        # The item hash is p:{item}:{id}: split around the id to pass its prefix and suffix.
        probe = self.keys.session("\0") if item == "session" else self.keys.job("\0")
        head, tail = probe.split("\0")
        token = uuid.uuid4().hex
        reserved, _held = await self._reserve(
            keys=[self.keys.holdings(kind, who)],
            args=[limit, self.pending_ms, token, head, tail, HOLDINGS_TTL_S, *finals],
        )
        return token if int(reserved) else None

    async def confirm(self, kind: str, who: str, token: str, item_id: str) -> None:
        """Records the created item in place of its reservation."""
        await self._confirm(keys=[self.keys.holdings(kind, who)], args=[token, item_id])

    async def release(self, kind: str, who: str, token: str) -> None:
        """Gives a reservation back (the item was not created)."""
        await self.redis.zrem(self.keys.holdings(kind, who), f"pending:{token}")

    async def held(self, kind: str, who: str) -> int:
        """Members recorded now (stale ones included until the next reservation drops them)."""
        return int(await self.redis.zcard(self.keys.holdings(kind, who)))
