"""docs/API.md's example answers are answers the contract describes (service/wire.py, parsed
strictly: every field named, none missing), and its budgets are the shipped default."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path
from typing import Any

import pytest

from service import limits, wire
from service.budget import check_budget

ROOT = Path(__file__).resolve().parents[2]
API_MD = ROOT / "docs" / "API.md"
LIVE_BUNDLE = (
    ROOT / "model_core" / "zoo" / "bundles" / "factorized_causal_tiny_motion112.safetensors"
)


def json_examples() -> list[dict[str, Any]]:
    """Every JSON object of the doc's ```json blocks (a block may hold several, one per event)."""
    decoder = json.JSONDecoder()
    found = []
    for block in re.findall(r"```json\n(.*?)```", API_MD.read_text(), flags=re.DOTALL):
        at = 0
        while (at := _skip_space(block, at)) < len(block):
            obj, at = decoder.raw_decode(block, at)  # an example that is not JSON fails here
            found.append(obj)
    return found


def _skip_space(text: str, at: int) -> int:
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def model_for(example: dict[str, Any]) -> type[wire.WireModel]:
    """The wire model of an example, from the fields that tell the answers apart."""
    if "error" in example:
        return wire.ErrorBody
    if "type" in example:
        return wire.EVENT_TYPES[example["type"]]
    for key, model in (
        ("events_url", wire.SessionView),
        ("models", wire.ModelList),
        ("ready", wire.Readiness),
        ("status_url", wire.JobAccepted),
        ("created", wire.JobView),
        ("timing_ms", wire.ClipAnswer),
    ):
        if key in example:
            return model
    raise AssertionError(f"an example of no known answer: {sorted(example)}")


def shipped_live_budget() -> dict[str, Any]:
    """The budget the shipped live bundle recommends, read from its safetensors header."""
    with LIVE_BUNDLE.open("rb") as f:
        (size,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(size))
    facts = json.loads(header["__metadata__"]["vidrec"])
    return check_budget(facts["training"]["live_budget"]["budget"])


EXAMPLES = json_examples()


def test_the_doc_has_an_example_of_each_answer() -> None:
    kinds = {model_for(e) for e in EXAMPLES}
    assert {
        wire.ErrorBody,
        wire.ClipAnswer,
        wire.JobAccepted,
        wire.JobView,
        wire.SessionEvent,
        wire.LabelsEvent,
        wire.ErrorEvent,
        wire.SessionView,
        wire.ModelList,
        wire.Readiness,
    } <= kinds


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: model_for(e).__name__)
def test_each_example_is_fully_described_by_the_contract(example: dict[str, Any]) -> None:
    model = wire.build(model_for(example), example)  # unknown or missing fields fail
    for timing in (getattr(model, "timing_ms", None), getattr(model, "result", None)):
        if isinstance(timing, wire.Timing):  # the breakdown adds up to at most its total
            assert timing.queue_wait + timing.decode + timing.inference <= timing.total


def test_the_budgets_shown_are_the_shipped_default() -> None:
    default = shipped_live_budget()
    sessions = [e for e in EXAMPLES if e.get("type") == "session"]
    models = [m for e in EXAMPLES if "models" in e for m in e["models"] if m.get("live")]
    assert sessions and models
    assert all(s["budget"] == default for s in sessions), default
    assert all(m["recommended_budget"] == default for m in models), default


def test_the_bounds_shown_are_the_shared_ones() -> None:
    text = API_MD.read_text()
    top_k = re.search(r"\| `top_k` \| int 1\.\.(\d+) \| (\d+) \|", text)
    clips = re.search(r"\| `clips` \| int 1\.\.(\d+) \| (\d+) \|", text)
    assert top_k and clips
    assert (int(top_k[1]), int(top_k[2])) == (limits.MAX_TOP_K, limits.DEFAULT_TOP_K)
    assert (int(clips[1]), int(clips[2])) == (limits.MAX_CLIPS, limits.DEFAULT_CLIPS)
    strides = re.findall(r"`?stride`?[^\n]*?1\.\.(\d+)", text)
    assert len(strides) == 2 and {int(s) for s in strides} == {limits.MAX_STRIDE}
