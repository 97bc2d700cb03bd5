"""The worker's metrics text and the gateway's merged scrape, parsed back as Prometheus would."""

from __future__ import annotations

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import GatewayMetrics, Scrape, WorkerMetrics


def _families(text: str) -> dict[str, Metric]:
    names = [f.name for f in text_string_to_metric_families(text)]
    assert len(names) == len(set(names)), f"duplicate families: {names}"
    return {f.name: f for f in text_string_to_metric_families(text)}


def _value(text: str, sample: str, **labels: str) -> float:
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == sample and s.labels == labels:
                return float(s.value)
    raise AssertionError(f"no sample {sample}{labels}")


def _worker(model: str) -> WorkerMetrics:
    m = WorkerMetrics()
    m.observe_clip_job(model, "done", inference_s=0.02, decode_s=0.01, gmacs=3.5, frames=8)
    m.observe_step(
        model, seconds=0.004, frames=2, gmacs=1.0, dense_gmacs=4.0, recompute_fractions=[0.2, 0.3]
    )
    m.dropped("backlog", 3)
    return m


def test_worker_text_names_units_and_model_label() -> None:
    text = _worker("tiny").render()
    families = _families(text)
    assert not any(name.endswith("_created") for name in families)
    assert "_created" not in text
    assert _value(text, "vidrec_gmacs_total", model="tiny") == 4.5
    assert _value(text, "vidrec_dense_gmacs_total", model="tiny") == 7.5
    assert _value(text, "vidrec_frames_processed_total", model="tiny") == 10
    assert _value(text, "vidrec_clip_jobs_total", model="tiny", status="done") == 1
    assert _value(text, "vidrec_frames_dropped_total", reason="backlog") == 3
    assert _value(text, "vidrec_inference_seconds_count", model="tiny") == 2
    assert _value(text, "vidrec_tokens_recomputed_fraction_count", model="tiny") == 2
    assert _value(text, "vidrec_decode_seconds_count") == 1
    assert all(name.startswith("vidrec_") for name in families)


def test_gateway_merges_workers_with_a_worker_label() -> None:
    gateway = GatewayMetrics()
    gateway.observe_request("/v1/clips", "POST", 200, 0.5)
    gateway.frames_dropped.labels(reason="frame_too_large").inc()
    texts = {"w1": _worker("tiny").render(), "w2": _worker("small").render()}
    out = gateway.render(
        Scrape(queue_depth=4, active_sessions=2, workers_live=2, worker_texts=texts)
    )
    text = out.decode()
    families = _families(text)  # asserts every family name appears once
    assert _value(text, "vidrec_queue_depth") == 4
    assert _value(text, "vidrec_active_sessions") == 2
    assert _value(text, "vidrec_workers_live") == 2
    assert (
        _value(text, "vidrec_http_requests_total", route="/v1/clips", method="POST", status="200")
        == 1
    )
    assert _value(text, "vidrec_gmacs_total", model="tiny", worker="w1") == 4.5
    assert _value(text, "vidrec_gmacs_total", model="small", worker="w2") == 4.5
    # one family, samples from the gateway (no worker label) and from both workers
    dropped = families["vidrec_frames_dropped"]
    labels = sorted(tuple(sorted(s.labels.items())) for s in dropped.samples)
    assert labels == [
        (("reason", "backlog"), ("worker", "w1")),
        (("reason", "backlog"), ("worker", "w2")),
        (("reason", "frame_too_large"),),
    ]
    assert (
        _value(text, "vidrec_inference_seconds_bucket", model="tiny", worker="w1", le="+Inf") == 2
    )


def test_a_bad_worker_text_is_skipped_not_fatal() -> None:
    gateway = GatewayMetrics()
    texts = {"bad": "this is { not prometheus", "good": _worker("tiny").render()}
    text = gateway.render(Scrape(worker_texts=texts)).decode()
    assert _value(text, "vidrec_gmacs_total", model="tiny", worker="good") == 4.5


def test_a_worker_family_of_another_type_is_skipped() -> None:
    gateway = GatewayMetrics()
    clash = "# TYPE vidrec_queue_depth counter\nvidrec_queue_depth_total 5\n"
    text = gateway.render(Scrape(queue_depth=1, worker_texts={"w": clash})).decode()
    _families(text)
    assert _value(text, "vidrec_queue_depth") == 1
