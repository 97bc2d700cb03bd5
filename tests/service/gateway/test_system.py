"""``/v1/models``, ``/healthz``, ``/readyz``, ``/metrics`` and the OpenAPI docs."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable

from gateway_support import CLIP_MODEL, LABELS, LIVE_MODEL, StandInWorker, TestClient
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from service.settings import Settings


def _families(text: str) -> dict[str, Metric]:
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), f"duplicate families: {names}"
    return {f.name: f for f in families}


def _value(families: dict[str, Metric], family: str, sample: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == sample and s.labels == labels:
            return float(s.value)
    return 0.0


def test_gateway_never_imports_torch() -> None:
    code = (
        "import sys, service.gateway, service.metrics; "
        "print('torch' in sys.modules, 'model_core' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_healthz_is_200_without_workers(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_head_answers_like_get_without_a_body(client: TestClient) -> None:
    for path in ("/healthz", "/readyz", "/v1/models", "/metrics"):
        get = client.get(path)
        head = client.head(path)
        assert head.status_code == get.status_code, path
        assert head.content == b"", path
        assert head.headers["content-type"] == get.headers["content-type"], path
    # A route that has no GET still refuses HEAD, naming what it serves.
    refused = client.head("/v1/clips")
    assert refused.status_code == 405
    assert "POST" in refused.headers["allow"]


def test_readyz_503_without_a_worker_then_200(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["ready"] is False
    assert "no live worker" in response.json()["reason"]
    make_worker(models=[], live_models=[])
    response = client.get("/readyz")
    assert response.status_code == 503
    assert "none with models loaded" in response.json()["reason"]


def test_readyz_200_with_a_loaded_worker_and_503_after_it_stops(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    worker = make_worker()
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["workers_ready"] == 1
    worker.stop()
    assert client.get("/readyz").status_code == 503


def test_readyz_503_when_a_worker_heartbeat_expires(
    client: TestClient, settings: Settings, make_worker: Callable[..., StandInWorker]
) -> None:
    worker = make_worker()
    worker._stop.set()  # the thread stops beating, as a killed worker would
    worker._thread.join()
    assert client.get("/readyz").status_code == 200
    deadline = time.monotonic() + settings.heartbeat_ttl_s + 2
    while client.get("/readyz").status_code == 200:
        assert time.monotonic() < deadline, "the heartbeat never expired"
        time.sleep(0.1)


def test_models_is_the_union_of_the_live_workers(
    client: TestClient, make_worker: Callable[..., StandInWorker]
) -> None:
    assert client.get("/v1/models").json() == {
        "models": [],
        "defaults": {"clip": None, "live": None},
        "workers": [],
    }
    make_worker(worker_id="w1", models=[CLIP_MODEL], live_models=[])
    make_worker(worker_id="w2", models=[CLIP_MODEL], live_models=[LIVE_MODEL])
    body = client.get("/v1/models").json()
    assert body["workers"] == ["w1", "w2"]
    assert body["defaults"] == {"clip": CLIP_MODEL, "live": LIVE_MODEL}
    rows = {row["name"]: row for row in body["models"]}
    assert set(rows) == {CLIP_MODEL, LIVE_MODEL}
    assert rows[CLIP_MODEL]["serving"] == {"clip": ["w1", "w2"], "live": []}
    assert rows[LIVE_MODEL]["serving"] == {"clip": [], "live": ["w2"]}
    assert rows[CLIP_MODEL]["labels"] == LABELS
    assert rows[CLIP_MODEL]["frames"] == 8 and rows[CLIP_MODEL]["img_size"] == 64


def test_metrics_count_requests_and_merge_the_workers(
    client: TestClient, make_worker: Callable[..., StandInWorker], mp4: bytes
) -> None:
    worker = make_worker()
    for _ in range(3):
        assert client.get("/v1/models").status_code == 200
    client.get("/v1/jobs/abc")
    client.get("/v1/jobs/def")
    client.get("/no/such/path")
    response = client.post("/v1/clips", files={"file": ("a.mp4", mp4, "video/mp4")})
    assert response.status_code == 200
    worker.beat()  # publish the metrics that include the clip job just done
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    families = _families(response.text)
    requests = "vidrec_http_requests"
    total = "vidrec_http_requests_total"
    assert _value(families, requests, total, route="/v1/models", method="GET", status="200") == 3
    # the route template, never the raw path
    assert (
        _value(families, requests, total, route="/v1/jobs/{job_id}", method="GET", status="404")
        == 2
    )
    assert _value(families, requests, total, route="<unmatched>", method="GET", status="404") == 1
    assert _value(families, requests, total, route="/v1/clips", method="POST", status="200") == 1
    duration = "vidrec_http_request_duration_seconds"
    assert _value(families, duration, duration + "_count", route="/v1/models") == 3
    assert _value(families, "vidrec_workers_live", "vidrec_workers_live") == 1
    assert _value(families, "vidrec_queue_depth", "vidrec_queue_depth") == 0
    assert _value(families, "vidrec_active_sessions", "vidrec_active_sessions") == 0
    # the worker's families, with its id as a label
    jobs = _value(
        families,
        "vidrec_clip_jobs",
        "vidrec_clip_jobs_total",
        model=CLIP_MODEL,
        status="done",
        worker="w1",
    )
    assert jobs == 1
    assert (
        _value(families, "vidrec_gmacs", "vidrec_gmacs_total", model=CLIP_MODEL, worker="w1") == 0.8
    )
    for name in families:
        assert name.startswith("vidrec_"), name


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    for path in ("/v1/clips", "/v1/jobs/{job_id}", "/v1/streams", "/v1/models", "/readyz"):
        assert path in spec["paths"], path


def test_redis_down_is_503_but_the_process_is_alive() -> None:
    from service.gateway import create_app

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    settings = Settings(redis_url=f"redis://127.0.0.1:{port}/0", key_prefix="vidrec-down")
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["redis"] is False
        models = client.get("/v1/models")
        assert models.status_code == 503
        assert models.json()["error"]["code"] == "redis_unavailable"
        assert models.headers["retry-after"]
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        assert "vidrec_http_requests_total" in metrics.text
