"""Live sessions on the Eventful engine: budgets, events, batching and slots."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest
import torch
from inference_bundles import AVG_MODEL, CLIP_MODEL, LIVE_MODEL, clip_frames

from model_core.eventful import KEEP_ALL, Threshold, TopFraction, TopR
from model_core.preprocess import preprocess_frames
from service.budget import check_budget
from service.inference import (
    CapacityError,
    LiveEvent,
    LiveRunner,
    ModelCatalog,
    UnknownSessionError,
    budget_to_dict,
    parse_budget,
)

FRAMES = 20


def stream(seed: int, frames: int = FRAMES, size: int = 112) -> np.ndarray:
    """``(frames, size, size, 3)`` uint8: a generated action clip played as a stream."""
    return clip_frames(seed, frames=frames, size=size)


def run(runner: LiveRunner, session: str, frames: np.ndarray) -> list[LiveEvent | None]:
    return [runner.step({session: frame})[session] for frame in frames]


def scores(event: LiveEvent) -> dict[str, float]:
    return dict(event.labels)


# Budgets.


@pytest.mark.parametrize(
    ("spec", "budget"),
    [
        ({"fraction": 0.25}, TopFraction(0.25)),
        ({"fraction": 1}, TopFraction(1.0)),
        ({"tokens": 20}, TopR(20)),
        ({"threshold": 0.1}, Threshold(0.1)),
        ({"threshold": 0}, Threshold(0.0)),
        ({"threshold": [0.75, 2, 1.5]}, Threshold((0.75, 2.0, 1.5))),
        ({"threshold": 1.5, "input": 3}, Threshold(1.5, input=3.0)),
        ({"threshold": [1, 2, 2], "input": 0}, Threshold((1.0, 2.0, 2.0), input=0.0)),
        ({"keep_all": True}, KEEP_ALL),
    ],
)
def test_parse_budget(spec: dict[str, Any], budget: Any) -> None:
    assert parse_budget(spec) == budget
    assert parse_budget(budget_to_dict(budget)) == budget


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({}, "a budget is one of"),
        ({"fraction": 0.5, "tokens": 3}, "a budget is one of"),
        ([("fraction", 0.5)], "a budget is one of"),
        ({"fraction": 0}, "budget fraction must be a number in (0, 1], got 0"),
        ({"fraction": 1.5}, "budget fraction must be"),
        ({"fraction": math.nan}, "budget fraction must be"),
        ({"fraction": "0.5"}, "budget fraction must be"),
        ({"tokens": 0}, "budget tokens must be an integer >= 1, got 0"),
        ({"tokens": 2.5}, "budget tokens must be"),
        ({"tokens": True}, "budget tokens must be"),
        ({"threshold": -1}, "budget threshold must be"),
        ({"threshold": math.inf}, "budget threshold must be"),
        ({"threshold": [1.0, 2.0]}, "budget threshold must be"),
        ({"threshold": [1.0, math.nan, 2.0]}, "budget threshold must be"),
        ({"keep_all": False}, "budget keep_all must be true"),
        ({"keep_all": 1}, "budget keep_all must be true"),
        ({"threshold": 1, "input": math.inf}, "budget input must be a number >= 0"),
        ({"tokens": 3, "input": 2}, "a budget is one of"),
        ({"budget": 0.5}, "got {'budget': 0.5}"),
    ],
)
def test_parse_budget_errors(spec: Any, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_budget(spec)
    assert message in str(info.value)
    assert '{"keep_all": true}' in str(info.value)  # every refusal lists the accepted forms


def test_parse_budget_takes_the_services_one_grammar() -> None:
    """The engine's parse takes what the gateway, the settings and the SDK accept
    (service.budget.check_budget): a bare fraction and the dense words too."""
    assert parse_budget(0.25) == TopFraction(0.25)
    assert parse_budget("all") == KEEP_ALL
    for spec in (0.25, "dense", {"tokens": 3}, {"threshold": [1, 2, 2]}):
        assert parse_budget(spec) == parse_budget(check_budget(spec))


# Equivalence with the dense model.


def dense_probs(catalog: ModelCatalog, name: str, frames: np.ndarray, count: int) -> torch.Tensor:
    """Softmax of the model over the window that ends after ``count`` frames."""
    entry = catalog.get(name)
    x = preprocess_frames(frames[max(0, count - entry.frames) : count], entry.config.preprocessing)
    with torch.no_grad():
        return entry.model(x[None])[0].softmax(-1)


@pytest.mark.parametrize("name", [LIVE_MODEL, AVG_MODEL])
def test_keep_all_equals_the_dense_model_on_every_window(catalog: ModelCatalog, name: str) -> None:
    frames = stream(1)
    runner = LiveRunner(catalog.get(name), capacity=2, stride=4, top_k=11)
    runner.open("a", {"keep_all": True})
    events = run(runner, "a", frames)
    for t, event in enumerate(events):
        if (t + 1) % 4:
            assert event is None
            continue
        assert event is not None
        expected = dense_probs(catalog, name, frames, t + 1)
        labels = catalog.get(name).labels
        got = torch.tensor([scores(event)[label] for label in labels])
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
        assert event.labels[0][0] == labels[int(expected.argmax())]
        assert event.window == min(t + 1, 8)
        assert event.compute.recompute_fraction == 1.0
        assert event.compute.gmacs == pytest.approx(event.compute.dense_gmacs)


def test_two_interleaved_sessions_equal_each_alone(catalog: ModelCatalog) -> None:
    entry = catalog.get(LIVE_MODEL)
    first, second = stream(2), stream(3, size=128)
    budgets = [{"fraction": 0.25}, {"tokens": 6}]
    alone = []
    for frames, budget in zip((first, second), budgets, strict=True):
        runner = LiveRunner(entry, capacity=1, stride=3)
        runner.open("s", budget)
        alone.append(run(runner, "s", frames))

    runner = LiveRunner(entry, capacity=4, stride=3)
    runner.open("x", {"keep_all": True})  # an idle session holding slot 0
    runner.open("first", budgets[0])
    runner.open("second", budgets[1])
    got: dict[str, list[LiveEvent | None]] = {"first": [], "second": []}
    late = 2  # the second session starts two frames later, so fresh and running frames mix
    for step in range(FRAMES + late):
        batch = {}
        if step < FRAMES:
            batch["first"] = first[step]
        if step >= late:
            batch["second"] = second[step - late]
        out = runner.step(batch)
        for session, event in out.items():
            got[session].append(event)
    for session, expected in zip(("first", "second"), alone, strict=True):
        for event, reference in zip(got[session], expected, strict=True):
            assert (event is None) == (reference is None)
            if event is not None and reference is not None:
                assert event.frame_index == reference.frame_index
                assert [lb for lb, _ in event.labels] == [lb for lb, _ in reference.labels]
                np.testing.assert_allclose(
                    [s for _, s in event.labels], [s for _, s in reference.labels], atol=1e-5
                )
                # The engine runs the query-key product of a whole batch in full when the
                # widest selection reaches half the tokens (a fresh partner's first frame), and
                # charges that to every session of the step: a few per cent at most here.
                assert event.compute.gmacs == pytest.approx(reference.compute.gmacs, rel=0.02)
                assert event.compute.dense_gmacs == pytest.approx(reference.compute.dense_gmacs)
                assert event.compute.recompute_fraction == pytest.approx(
                    reference.compute.recompute_fraction
                )


def test_events_come_every_stride_frames_with_the_compute_since_the_last(
    catalog: ModelCatalog,
) -> None:
    runner = LiveRunner(catalog.get(LIVE_MODEL), capacity=1, stride=3, top_k=2)
    runner.open("s", {"fraction": 0.3})
    events = run(runner, "s", stream(4, frames=10))
    emitted = [e for e in events if e is not None]
    assert [i for i, e in enumerate(events) if e is not None] == [2, 5, 8]
    assert [e.frame_index for e in emitted] == [3, 6, 9]
    assert all(e.compute.frames == 3 and len(e.labels) == 2 for e in emitted)
    assert [e.totals.frames for e in emitted] == [3, 6, 9]
    # The first frame recomputes everything; later ones a fraction.
    assert emitted[0].compute.recompute_fraction > emitted[1].compute.recompute_fraction
    assert emitted[1].compute.recompute_fraction < 0.5
    assert sum(e.compute.gmacs for e in emitted) == pytest.approx(emitted[-1].totals.gmacs)
    assert runner.totals("s").frames == 10
    body = json.loads(json.dumps(emitted[0].to_dict()))
    assert body["type"] == "labels" and body["session_id"] == "s" and body["frame_index"] == 3
    assert set(body["compute"]) == {"gmacs", "dense_gmacs", "recompute_fraction", "frames"}
    assert set(body["labels"][0]) == {"label", "score"}
    assert body["totals"]["frames"] == 3


def test_a_lower_budget_spends_fewer_gmacs(catalog: ModelCatalog) -> None:
    frames = stream(5, frames=12)
    spent = {}
    for budget in ({"keep_all": True}, {"fraction": 0.5}, {"fraction": 0.1}, {"tokens": 2}):
        runner = LiveRunner(catalog.get(LIVE_MODEL), capacity=1, stride=4)
        runner.open("s", budget)
        run(runner, "s", frames)
        totals = runner.totals("s")
        spent[json.dumps(budget)] = (totals.gmacs, totals.dense_gmacs)
    gmacs = [g for g, _ in spent.values()]
    dense = {d for _, d in spent.values()}
    assert gmacs == sorted(gmacs, reverse=True) and len(set(gmacs)) == 4
    assert len(dense) == 1 and gmacs[0] == pytest.approx(dense.pop())


def test_set_budget_applies_from_the_next_frame(catalog: ModelCatalog) -> None:
    runner = LiveRunner(catalog.get(LIVE_MODEL), capacity=1, stride=2)
    runner.open("s")
    assert runner.budget("s") == KEEP_ALL
    frames = stream(6, frames=8)
    run(runner, "s", frames[:4])
    runner.set_budget("s", {"tokens": 3})
    assert runner.budget("s") == TopR(3)
    event = run(runner, "s", frames[4:6])[-1]
    assert event is not None and event.compute.recompute_fraction < 0.2
    runner.set_budget("s", Threshold(0.5))
    assert runner.budget("s") == Threshold(0.5)


def test_reset_restarts_the_window_and_counting_goes_on(catalog: ModelCatalog) -> None:
    entry = catalog.get(LIVE_MODEL)
    old, new = stream(7, frames=6), stream(8, frames=8)
    runner = LiveRunner(entry, capacity=1, stride=4)
    runner.open("s", {"fraction": 0.25}, first_index=100)
    run(runner, "s", old[:5])
    runner.reset("s")
    events = run(runner, "s", new)
    fresh = LiveRunner(entry, capacity=1, stride=4)
    fresh.open("s", {"fraction": 0.25})
    expected = run(fresh, "s", new)
    for event, reference in zip(events, expected, strict=True):
        assert (event is None) == (reference is None)
        if event is not None and reference is not None:
            assert event.labels == reference.labels
            assert event.window == reference.window
            assert event.frame_index == 100 + 5 + reference.frame_index
    assert runner.totals("s").frames == 13


def test_slots_capacity_and_unknown_sessions(catalog: ModelCatalog) -> None:
    runner = LiveRunner(catalog.get(AVG_MODEL), capacity=2, stride=1)
    runner.open("a")
    runner.open("b", TopR(4))
    assert (len(runner), runner.free, runner.sessions) == (2, 0, ["a", "b"])
    with pytest.raises(CapacityError, match="all 2 live session slots"):
        runner.open("c")
    with pytest.raises(ValueError, match="open already"):
        runner.open("a")
    assert runner.close("a") is True
    assert runner.close("a") is False
    runner.open("c")
    assert "c" in runner and "a" not in runner
    frame = stream(9, frames=2)[0]
    with pytest.raises(UnknownSessionError, match="'a' is not open"):
        runner.step({"c": frame, "a": frame})
    assert runner.totals("c").frames == 0  # nothing was computed
    with pytest.raises(ValueError, match="expected one \\(height, width, 3\\)"):
        runner.step({"c": frame[None]})
    with pytest.raises(ValueError, match="uint8"):
        runner.step({"c": frame.astype(np.float32)})
    with pytest.raises(ValueError, match="budget fraction must be"):
        runner.open("d", {"fraction": 2})
    assert runner.step({}) == {}
    out = runner.step({"c": frame, "b": stream(10, frames=2, size=64)[0]})
    assert set(out) == {"c", "b"} and all(e is not None for e in out.values())
    with pytest.raises(UnknownSessionError):
        runner.reset("zzz")


def test_a_model_that_cannot_stream_is_refused(catalog: ModelCatalog) -> None:
    with pytest.raises(ValueError, match="cannot serve live streams"):
        LiveRunner(catalog.get(CLIP_MODEL), capacity=1, stride=1)
    with pytest.raises(ValueError, match="top_k"):
        LiveRunner(catalog.get(LIVE_MODEL), capacity=1, stride=1, top_k=0)
    runner = LiveRunner(catalog.get(LIVE_MODEL), capacity=3, stride=5)
    assert (runner.capacity, runner.stride, runner.window) == (3, 5, 8)
    assert runner.bytes_per_slot > 0


def test_run_tells_each_sessions_cost_as_the_engine_counted_it(catalog: ModelCatalog) -> None:
    runner = LiveRunner(catalog.get(LIVE_MODEL), capacity=2, stride=4)
    runner.open("dense", KEEP_ALL)
    runner.open("cheap", {"fraction": 0.25})
    a, b = stream(1), stream(2)
    seen = {"dense": 0.0, "cheap": 0.0}
    for i in range(6):
        step = runner.run({"dense": a[i], "cheap": b[i]})
        assert set(step.costs) == set(step.events) == {"dense", "cheap"}
        for sid, cost in step.costs.items():
            seen[sid] += cost.gmacs
            assert math.isclose(seen[sid], runner.totals(sid).gmacs)
        if i == 0:  # a first frame recomputes every token, whatever the budget
            assert math.isclose(step.costs["cheap"].gmacs, step.costs["dense"].gmacs)
        else:
            assert step.costs["cheap"].gmacs < step.costs["dense"].gmacs
            assert step.costs["cheap"].recompute_fraction < 1.0
