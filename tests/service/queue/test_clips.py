"""Clip jobs against a real Redis: submit, consume, answer once, reclaim, dead-letter, bounds."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import redis
import redis.asyncio

from service.ingest.errors import TruncatedError
from service.keys import CLIP_GROUP, Keys
from service.queue import (
    DEAD_LETTER,
    UPLOAD_EXPIRED,
    ClipConsumer,
    ClipJobs,
    JobNotFoundError,
    QueueFullError,
    WorkerRegistry,
)
from service.settings import Settings

pytestmark = pytest.mark.integration

PARAMS = {"top_k": 3}


def consumer(r: redis.Redis, keys: Keys, settings: Settings, name: str) -> ClipConsumer:
    return ClipConsumer(r, keys, name, settings)


def submit(
    arun: Any, keys: Keys, settings: Settings, data: bytes = b"clip", n: int = 1
) -> list[str]:
    async def go(client: redis.asyncio.Redis) -> list[str]:
        jobs = ClipJobs(client, keys, settings)
        return [await jobs.submit(data, "tiny", PARAMS, f"clip{i}.mp4") for i in range(n)]

    ids: list[str] = arun(go)
    return ids


def wait(arun: Any, keys: Keys, settings: Settings, job_id: str, timeout_s: float = 2.0) -> Any:
    async def go(client: redis.asyncio.Redis) -> Any:
        return await ClipJobs(client, keys, settings).wait(job_id, timeout_s)

    return arun(go)


def test_submit_consume_finish_wait(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    (job_id,) = submit(arun, keys, settings, b"\x00video\xff")
    worker = consumer(r, keys, settings, "w1")
    (task,) = worker.read(count=4, block_ms=100)
    assert (task.job_id, task.model, task.params, task.data) == (
        job_id,
        "tiny",
        PARAMS,
        b"\x00video\xff",
    )
    assert task.deliveries == 1 and task.filename == "clip0.mp4" and task.size == 7
    assert 0 < task.enqueued_s <= time.time()
    assert worker.mark_running(task)

    async def running(client: redis.asyncio.Redis) -> Any:
        return await ClipJobs(client, keys, settings).job(job_id)

    view = arun(running)
    assert (view.state, view.worker, view.result) == ("running", "w1", None)

    assert worker.finish(task, {"labels": [{"label": "wave", "score": 0.9}]})
    assert wait(arun, keys, settings, job_id) == {"labels": [{"label": "wave", "score": 0.9}]}
    view = arun(running)
    assert view.state == "done" and view.finished is not None and view.error is None
    assert r.xlen(keys.clips) == 0  # acked and deleted: the length is the queue depth
    assert not r.exists(keys.upload(job_id))  # the upload is freed with the answer
    assert r.xpending(keys.clips, CLIP_GROUP)["pending"] == 0


def test_the_submitter_is_recorded_and_older_records_still_run(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    """The gateway records who submitted a job; the worker reads records with and without it
    (jobs queued before submitters were kept) alike."""

    async def go(client: redis.asyncio.Redis) -> list[str]:
        jobs = ClipJobs(client, keys, settings)
        return [
            await jobs.submit(b"mine", "tiny", PARAMS, "a.mp4", submitted_by="key:alice"),
            await jobs.submit(b"old", "tiny", PARAMS, "b.mp4"),
        ]

    mine, old = arun(go)
    assert r.hget(keys.job(mine), "submitted_by") == b"key:alice"
    assert r.hget(keys.job(old), "submitted_by") is None

    worker = consumer(r, keys, settings, "w1")
    tasks = worker.read(count=4, block_ms=100)
    assert [(t.job_id, t.data, t.filename) for t in tasks] == [
        (mine, b"mine", "a.mp4"),
        (old, b"old", "b.mp4"),
    ]
    for task in tasks:
        assert worker.mark_running(task)
        assert worker.finish(task, {"labels": []})

    async def views(client: redis.asyncio.Redis) -> list[Any]:
        jobs = ClipJobs(client, keys, settings)
        return [await jobs.job(mine), await jobs.job(old)]

    done_mine, done_old = arun(views)
    assert (done_mine.state, done_mine.submitted_by) == ("done", "key:alice")
    assert (done_old.state, done_old.submitted_by) == ("done", None)


def test_wait_wakes_when_the_answer_arrives(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    (job_id,) = submit(arun, keys, settings)
    worker = consumer(r, keys, settings, "w1")

    def answer() -> None:
        time.sleep(0.2)
        (task,) = worker.read(block_ms=100)
        worker.finish(task, {"ok": True})

    async def go(client: redis.asyncio.Redis) -> tuple[Any, Any, float]:
        jobs = ClipJobs(client, keys, settings)
        start = time.monotonic()
        waiters = asyncio.gather(jobs.wait(job_id, 5.0), jobs.wait(job_id, 5.0))
        await asyncio.to_thread(answer)
        first, second = await waiters
        return first, second, time.monotonic() - start

    first, second, elapsed = arun(go)
    assert first == second == {"ok": True}  # both waiters woke, not only the one that popped
    assert elapsed < 2.0


def test_wait_times_out_and_unknown_job_raises(arun: Any, keys: Keys, settings: Settings) -> None:
    (job_id,) = submit(arun, keys, settings)
    start = time.monotonic()
    assert wait(arun, keys, settings, job_id, timeout_s=0.2) is None
    assert time.monotonic() - start < 1.5
    with pytest.raises(JobNotFoundError):
        wait(arun, keys, settings, "no-such-job")

    async def view(client: redis.asyncio.Redis) -> Any:
        return await ClipJobs(client, keys, settings).job("no-such-job")

    assert arun(view) is None


def test_duplicate_run_is_answered_once(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    (job_id,) = submit(arun, keys, settings)
    slow = consumer(r, keys, settings, "slow")
    (first,) = slow.read()
    time.sleep(0.1)  # idle past reclaim_idle_ms: another worker takes it over
    fast = consumer(r, keys, settings, "fast")
    (second,) = fast.read()
    assert second.job_id == job_id and second.deliveries == 2
    slow.touch()  # the slow one still works on it, but does not claim it back
    (pending,) = r.xpending_range(keys.clips, CLIP_GROUP, "-", "+", 10)
    assert pending["consumer"] == b"fast"
    assert fast.finish(second, {"by": "fast"})
    assert not slow.mark_running(first)  # already answered: the slow one may skip the work
    assert not slow.finish(first, {"by": "slow"})
    assert slow.stats.duplicates == 1
    assert wait(arun, keys, settings, job_id) == {"by": "fast"}
    assert r.xlen(keys.clips) == 0
    assert r.xpending(keys.clips, CLIP_GROUP)["pending"] == 0


def test_queue_full_raises_with_retry_after(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    submit(arun, keys, settings, n=settings.queue_max_jobs)
    with pytest.raises(QueueFullError) as caught:
        submit(arun, keys, settings)
    assert caught.value.retry_after_s == 3 and caught.value.http_status == 429
    assert caught.value.to_dict()["retry_after_s"] == 3

    async def depth(client: redis.asyncio.Redis) -> int:
        return await ClipJobs(client, keys, settings).depth()

    assert arun(depth) == settings.queue_max_jobs
    # Running jobs still count; an answered one frees its place.
    worker = consumer(r, keys, settings, "w1")
    (task,) = worker.read()
    worker.finish(task, {})
    submit(arun, keys, settings)
    assert arun(depth) == settings.queue_max_jobs


def test_dead_consumers_entries_are_reclaimed(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    ids = submit(arun, keys, settings, n=3)
    dead = consumer(r, keys, settings, "dead")
    assert len(dead.read(count=2)) == 2  # then it dies without answering
    alive = consumer(r, keys, settings, "alive")
    (fresh,) = alive.read(count=5)  # not idle long enough yet: only the new entry
    assert fresh.job_id == ids[2] and fresh.deliveries == 1
    time.sleep(0.1)
    reclaimed = alive.read(count=5)
    assert sorted(t.job_id for t in reclaimed) == sorted(ids[:2])
    assert all(t.deliveries == 2 for t in reclaimed)
    assert alive.stats.reclaimed == 2
    for task in [fresh, *reclaimed]:
        alive.finish(task, {"job": task.job_id})
    for job_id in ids:
        assert wait(arun, keys, settings, job_id) == {"job": job_id}


def test_touch_keeps_a_long_job_from_being_reclaimed(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    submit(arun, keys, settings)
    busy = consumer(r, keys, settings, "busy")
    (task,) = busy.read()
    other = consumer(r, keys, settings, "other")
    for _ in range(3):
        time.sleep(0.03)
        busy.touch([task])
        assert other.read() == []
    assert busy.finish(task, {})


def test_a_released_job_is_no_longer_renewed_and_is_reclaimed(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    (job_id,) = submit(arun, keys, settings)
    busy = consumer(r, keys, settings, "busy")
    (task,) = busy.read()
    busy.release([task])  # e.g. Redis failed mid-batch: this worker will not answer it
    assert busy.in_flight == 0
    other = consumer(r, keys, settings, "other")
    time.sleep(0.1)
    busy.touch()  # renews nothing now
    (again,) = other.read()
    assert again.job_id == job_id and again.deliveries == 2
    assert other.finish(again, {"by": "other"})
    assert wait(arun, keys, settings, job_id) == {"by": "other"}


def test_dead_letter_after_max_deliveries(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    (job_id,) = submit(arun, keys, settings)
    for attempt in range(settings.max_deliveries):
        crashing = consumer(r, keys, settings, f"crashing-{attempt}")
        (task,) = crashing.read()
        assert task.deliveries == attempt + 1
        assert crashing.mark_running(task)
        time.sleep(0.1)  # the worker died mid-job
    last = consumer(r, keys, settings, "last")
    assert last.read() == []
    assert last.stats.dead_lettered == 1

    answer = wait(arun, keys, settings, job_id)
    assert answer["error"]["code"] == DEAD_LETTER
    assert "max_deliveries 2" in answer["error"]["message"]
    ((_, fields),) = r.xrange(keys.dead_letter)
    assert fields[b"job"].decode() == job_id
    assert fields[b"deliveries"] == b"2"
    assert fields[b"worker"] == b"crashing-1"  # the last worker that ran it
    assert DEAD_LETTER in fields[b"error"].decode()
    assert r.xlen(keys.clips) == 0


def test_expired_upload_fails_the_job_clearly(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    expired, kept = submit(arun, keys, settings, n=2)
    r.pexpire(keys.upload(expired), 1)
    time.sleep(0.02)
    worker = consumer(r, keys, settings, "w1")
    tasks = worker.read(count=5)
    assert [t.job_id for t in tasks] == [kept]
    assert worker.stats.expired == 1
    answer = wait(arun, keys, settings, expired)
    assert answer["error"]["code"] == UPLOAD_EXPIRED
    assert "expired before a worker took it" in answer["error"]["message"]

    async def view(client: redis.asyncio.Redis) -> Any:
        return await ClipJobs(client, keys, settings).job(expired)

    assert arun(view).state == "failed"


def test_fail_stores_the_error(r: redis.Redis, arun: Any, keys: Keys, settings: Settings) -> None:
    (job_id,) = submit(arun, keys, settings)
    worker = consumer(r, keys, settings, "w1")
    (task,) = worker.read()
    error = TruncatedError("the file ends early")
    assert worker.fail(task, {**error.to_dict(), "http_status": error.http_status})
    answer = wait(arun, keys, settings, job_id)
    assert answer == {
        "error": {"code": "truncated", "message": "the file ends early", "http_status": 422}
    }

    async def view(client: redis.asyncio.Redis) -> Any:
        return await ClipJobs(client, keys, settings).job(job_id)

    job = arun(view)
    assert job.state == "failed" and job.error["code"] == "truncated"


def test_jobs_submitted_before_any_worker_are_read(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    ids = submit(arun, keys, settings, n=2)  # the group does not exist yet
    worker = consumer(r, keys, settings, "late")
    assert [t.job_id for t in worker.read(count=5)] == ids
    assert worker.read(count=5, block_ms=50) == []


def test_a_dead_workers_jobs_are_taken_over_when_its_heartbeat_expires(
    r: redis.Redis, arun: Any, keys: Keys, settings: Settings
) -> None:
    # The idle-time safety net is far away: only the expired heartbeat can hand the jobs over.
    patient = settings.model_copy(update={"reclaim_idle_ms": 600_000})
    ids = submit(arun, keys, patient, n=2)
    WorkerRegistry(r, keys, "dying").beat({"models": ["tiny"]})
    dying = consumer(r, keys, patient, "dying")
    assert len(dying.read(count=2)) == 2  # then it dies: its heartbeat expires
    WorkerRegistry(r, keys, "alive").beat({"models": ["tiny"]})
    alive = consumer(r, keys, patient, "alive")
    assert alive.dead_consumers() == {}  # the dying one still beats
    assert alive.read(count=5) == []
    started = time.monotonic()
    taken = []
    while not taken:
        # A heartbeat TTL is 0.4 s here; the idle-time net would take 600 s.
        assert time.monotonic() - started < 10.0, "the expired worker's jobs were never taken"
        time.sleep(0.05)
        taken = alive.read(count=5)
    assert sorted(t.job_id for t in taken) == sorted(ids)
    assert all(t.deliveries == 2 for t in taken)
    for task in taken:
        alive.finish(task, {"job": task.job_id})
    assert wait(arun, keys, patient, ids[0]) == {"job": ids[0]}
    # Once it holds nothing the group forgets the dead consumer.
    time.sleep(patient.heartbeat_interval_s * 2)
    alive.read(count=1)
    names = {c["name"] for c in r.xinfo_consumers(keys.clips, CLIP_GROUP)}
    assert b"dying" not in names
