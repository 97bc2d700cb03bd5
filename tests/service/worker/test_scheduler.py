"""The scheduler's books: backlogs that drop the oldest, budgets that wait for their frames."""

from __future__ import annotations

import time

import pytest

from service.worker.scheduler import Frame, Scheduler


def frame(index: int) -> Frame:
    return Frame(input_index=index, data=b"%d" % index)


def test_a_full_backlog_drops_the_oldest_and_counts_it() -> None:
    books = Scheduler(backlog=2)
    books.add("s", processed=5, dropped=1)
    assert [books.push("s", frame(i)) for i in range(4)] == [0, 0, 1, 1]
    assert books.books["s"].dropped == 3 and books.books["s"].dirty
    assert [f.input_index for f in books.books["s"].backlog] == [2, 3]
    with pytest.raises(ValueError, match="at least 1"):
        Scheduler(backlog=0)


def test_the_plan_takes_the_oldest_frame_of_every_session_with_one() -> None:
    books = Scheduler(backlog=8)
    for sid in ("a", "b", "c"):
        books.add(sid)
    books.push("a", frame(0))
    books.push("a", frame(1))
    books.push("c", frame(7))
    assert books.pending()
    plan = books.due()
    assert {sid: f.input_index for sid, f in plan.items()} == {"a": 0, "c": 7}
    books.processed(list(plan))
    assert (books.books["a"].processed, books.books["b"].processed) == (1, 0)
    assert sorted(books.dirty()) == ["a", "c"]
    assert {sid: f.input_index for sid, f in books.due().items()} == {"a": 1}
    assert not books.pending() and books.due() == {}


def test_a_budget_waits_for_the_next_frame_and_survives_its_drop() -> None:
    books = Scheduler(backlog=1)
    books.add("s")
    assert books.budget_now("s", {"fraction": 0.5})  # nothing waits: it applies at once
    books.push("s", frame(0))
    assert not books.budget_now("s", {"tokens": 3})  # frame 0 was sent before it
    books.push("s", frame(1))  # carries the change, and drops frame 0
    books.push("s", frame(2))  # drops frame 1: its change moves on to frame 2
    (taken,) = books.due().values()
    assert (taken.input_index, taken.budget) == (2, {"tokens": 3})


def test_idle_sessions_are_those_without_a_recent_frame() -> None:
    books = Scheduler(backlog=4)
    books.add("quiet")
    books.add("busy")
    time.sleep(0.05)
    books.push("busy", frame(0))
    assert books.idle(["quiet", "busy"], 0.04) == ["quiet"]
    assert books.remove("quiet") is not None and "quiet" not in books
