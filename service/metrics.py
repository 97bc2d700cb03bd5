"""Prometheus metrics of the gateway and the workers, and the collector that merges them.

Names start with ``vidrec_``, carry their unit (``_seconds``, ``_total``, ``gmacs``) and take the
model as a label, never in the name (see ../shared/DESIGN.md, "Metrics").

Workers are not scraped one by one: each serialises its own registry (:class:`WorkerMetrics`) into
Redis on every heartbeat, and the gateway re-exports every live worker's families with a ``worker``
label added (:class:`GatewayMetrics.render`). One scrape of any gateway replica shows the whole
service, and a worker behind NAT or in a pod without a port needs no scrape target.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

log = logging.getLogger(__name__)

#: Content type of the text exposition format ``generate_latest`` writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Label added to every sample re-exported from a worker.
WORKER_LABEL = "worker"

# Request latencies of the gateway: from a cached GET (sub-millisecond) to a clip upload that waits
# for its answer (seconds).
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# One batched model step or clip: GPU steps are milliseconds, CPU clips up to seconds.
_INFERENCE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_DECODE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_FRACTION_BUCKETS = (0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.8, 1.0)


def _without_created(families: Iterable[Metric]) -> Iterator[Metric]:
    """Drops the ``*_created`` samples and families.

    They are OpenMetrics extras the Prometheus text format turns into separate gauge families; once
    parsed back they would collide with the families the gateway writes itself, and nobody graphs
    them.
    """
    for family in families:
        if family.type == "gauge" and family.name.endswith("_created"):
            continue
        created = family.name + "_created"
        samples = [s for s in family.samples if s.name != created]
        if len(samples) != len(family.samples):
            family = _copy_family(family, samples)
        yield family


def _copy_family(family: Metric, samples: list[Sample]) -> Metric:
    copy = Metric(family.name, family.documentation, family.type, family.unit)
    copy.samples = samples
    return copy


class WorkerMetrics:
    """The metrics a worker keeps, in a registry of its own.

    The worker updates them as it works and calls :meth:`render` on every heartbeat to store the
    text under ``Keys.worker_metrics(id)``; the gateway merges the texts of the live workers. Its
    own registry keeps several workers in one process (tests) from sharing counters.

    Attributes:
        registry: The registry :meth:`render` serialises.
        inference_seconds: Wall time of one batched model call, by model (a clip batch or a
            session step).
        clip_jobs: Clip jobs finished, by model and status (``done``, ``failed``, ``duplicate``,
            ``dead_letter``...).
        gmacs: GMACs spent, by model (clips and session steps).
        dense_gmacs: GMACs the same work would have cost without Eventful reuse, by model.
        tokens_recomputed_fraction: Fraction of tokens recomputed per session step, by model.
        frames_processed: Frames run through a model, by model (clip frames times views and
            session frames).
        frames_dropped: Frames dropped at the worker, by reason (``backlog``: a session's buffer
            overflowed and the oldest frame went; ``decode``: the image did not decode;
            ``no_session``: the session is not open here).
        decode_seconds: Wall time of decoding one upload or one live frame.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.inference_seconds = Histogram(
            "vidrec_inference_seconds",
            "Wall time of one batched model call",
            ["model"],
            buckets=_INFERENCE_BUCKETS,
            registry=r,
        )
        self.clip_jobs = Counter(
            "vidrec_clip_jobs", "Clip jobs finished, by status", ["model", "status"], registry=r
        )
        self.gmacs = Counter("vidrec_gmacs", "GMACs spent", ["model"], registry=r)
        self.dense_gmacs = Counter(
            "vidrec_dense_gmacs",
            "GMACs the same work would have cost recomputing every token",
            ["model"],
            registry=r,
        )
        self.tokens_recomputed_fraction = Histogram(
            "vidrec_tokens_recomputed_fraction",
            "Fraction of tokens recomputed in one session step",
            ["model"],
            buckets=_FRACTION_BUCKETS,
            registry=r,
        )
        self.frames_processed = Counter(
            "vidrec_frames_processed", "Frames run through a model", ["model"], registry=r
        )
        self.frames_dropped = Counter(
            "vidrec_frames_dropped", "Frames dropped, by reason", ["reason"], registry=r
        )
        self.decode_seconds = Histogram(
            "vidrec_decode_seconds",
            "Wall time of decoding one upload or live frame",
            buckets=_DECODE_BUCKETS,
            registry=r,
        )

    def observe_clip_job(
        self,
        model: str,
        status: str,
        *,
        inference_s: float | None = None,
        decode_s: float | None = None,
        gmacs: float = 0.0,
        frames: int = 0,
    ) -> None:
        """Records one finished clip job (``status``: ``done``, ``failed``...)."""
        self.clip_jobs.labels(model=model, status=status).inc()
        if inference_s is not None:
            self.inference_seconds.labels(model=model).observe(inference_s)
        if decode_s is not None:
            self.decode_seconds.observe(decode_s)
        if gmacs:
            self.gmacs.labels(model=model).inc(gmacs)
            self.dense_gmacs.labels(model=model).inc(gmacs)
        if frames:
            self.frames_processed.labels(model=model).inc(frames)

    def observe_step(
        self,
        model: str,
        *,
        seconds: float,
        frames: int,
        gmacs: float,
        dense_gmacs: float,
        recompute_fractions: Iterable[float] = (),
    ) -> None:
        """Records one batched session step: ``frames`` sessions advanced by one frame each."""
        self.inference_seconds.labels(model=model).observe(seconds)
        self.frames_processed.labels(model=model).inc(frames)
        self.gmacs.labels(model=model).inc(gmacs)
        self.dense_gmacs.labels(model=model).inc(dense_gmacs)
        fraction = self.tokens_recomputed_fraction.labels(model=model)
        for value in recompute_fractions:
            fraction.observe(value)

    def dropped(self, reason: str, count: int = 1) -> None:
        """Counts frames dropped at the worker."""
        if count:
            self.frames_dropped.labels(reason=reason).inc(count)

    def render(self) -> str:
        """The text exposition of the registry, without ``_created`` samples."""
        return generate_latest(_Families(_without_created(self.registry.collect()))).decode()


class _Families:
    """A fixed list of families in the shape ``generate_latest`` collects from."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self._families = list(families)

    def collect(self) -> list[Metric]:
        return self._families


@dataclass
class Scrape:
    """What the gateway reads from Redis for one scrape.

    Attributes:
        queue_depth: Outstanding clip jobs (XLEN of the clip stream).
        active_sessions: Open sessions.
        workers_live: Workers whose heartbeat key exists.
        worker_texts: Each live worker's metrics text, by worker id.
    """

    queue_depth: int = 0
    active_sessions: int = 0
    workers_live: int = 0
    worker_texts: Mapping[str, str] = field(default_factory=dict)


class GatewayMetrics:
    """The gateway's own metrics, and the merged rendering of one scrape.

    Attributes:
        registry: The gateway's own registry (one per app, so apps in tests do not share counters).
        http_requests: Requests answered, by route template, method and status.
        http_request_duration: Request duration, by route template.
        queue_depth: Outstanding clip jobs, set at scrape.
        active_sessions: Open sessions, set at scrape.
        workers_live: Live workers, set at scrape.
        frames_received: Frames received by the gateway, by kind (``live``).
        frames_dropped: Frames refused at the gateway, by reason (the ingest error code).
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.http_requests = Counter(
            "vidrec_http_requests",
            "HTTP requests and WebSocket connections answered",
            ["route", "method", "status"],
            registry=r,
        )
        self.http_request_duration = Histogram(
            "vidrec_http_request_duration_seconds",
            "Time from request to response, by route template",
            ["route"],
            buckets=_HTTP_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "vidrec_queue_depth", "Clip jobs queued or running (stream length)", registry=r
        )
        self.active_sessions = Gauge("vidrec_active_sessions", "Open stream sessions", registry=r)
        self.workers_live = Gauge(
            "vidrec_workers_live", "Workers with a live heartbeat", registry=r
        )
        self.frames_received = Counter(
            "vidrec_frames_received", "Frames received by the gateway", ["kind"], registry=r
        )
        self.frames_dropped = Counter(
            "vidrec_frames_dropped", "Frames dropped, by reason", ["reason"], registry=r
        )

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        """Counts one answered request; ``route`` is the template, never the raw path."""
        self.http_requests.labels(route=route, method=method, status=str(status)).inc()
        self.http_request_duration.labels(route=route).observe(seconds)

    def render(self, scrape: Scrape) -> bytes:
        """The gateway's families and every worker's, merged, as one text exposition.

        A family both sides define (``vidrec_frames_dropped_total``) becomes one family: the
        gateway's samples without a ``worker`` label, the workers' with one. A worker family whose
        type differs from the gateway's is skipped with a warning, since one name cannot have two
        types in one exposition.
        """
        self.queue_depth.set(scrape.queue_depth)
        self.active_sessions.set(scrape.active_sessions)
        self.workers_live.set(scrape.workers_live)
        merged: dict[str, Metric] = {}
        for family in _without_created(self.registry.collect()):
            merged[family.name] = _copy_family(family, list(family.samples))
        for worker_id, text in sorted(scrape.worker_texts.items()):
            for family in _parse(worker_id, text):
                into = merged.get(family.name)
                if into is None:
                    merged[family.name] = _copy_family(family, [])
                    into = merged[family.name]
                elif into.type != family.type:
                    log.warning(
                        "worker %s: metric %s is a %s here and a %s there; skipped",
                        worker_id,
                        family.name,
                        into.type,
                        family.type,
                    )
                    continue
                into.samples.extend(
                    s._replace(labels={**s.labels, WORKER_LABEL: worker_id}) for s in family.samples
                )
        return generate_latest(_Families(merged.values()))


def _parse(worker_id: str, text: str) -> list[Metric]:
    """A worker's families; a text that does not parse is logged and skipped, never fatal."""
    try:
        return list(_without_created(text_string_to_metric_families(text)))
    except ValueError as exc:
        log.warning("worker %s: metrics text does not parse: %s", worker_id, exc)
        return []
