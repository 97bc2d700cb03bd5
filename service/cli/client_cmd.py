"""``vidrec client ...``: talk to a running vidrec server through the Python SDK (``vidrec``).

- ``clip FILE``: upload a clip (multipart ``POST /v1/clips``), print its labels, timing and compute.
- ``job ID``: a clip job's state and answer (``GET /v1/jobs/{id}``).
- ``stream FILE``: read a video file frame by frame, send each frame as a JPEG over the live
  WebSocket (``/v1/streams/live``) at ``--fps``, print the events as they come.
- ``rtsp URL``: register an RTSP camera (``POST /v1/streams``) and follow its events.
- ``models``: the models the live workers serve (``GET /v1/models``).

The server is ``--url``, else ``$VIDREC_URL``, else http://127.0.0.1:8000; the API key
``--api-key``, else ``$VIDREC_API_KEY``. Answers of 429 and 503 are retried (``--retries``)
after the server's ``Retry-After``. A refusal is printed with the server's code and message and
makes the exit status 1. Nothing here imports torch or ``model_core``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from service import limits
from service.budget import parse_budget_text
from vidrec import (
    AsyncClient,
    Client,
    JobAccepted,
    LabelsEvent,
    RetryPolicy,
    StreamStats,
    VidrecError,
    video_frames,
)
from vidrec._config import API_KEY_ENV, DEFAULT_URL, URL_ENV, ws_url
from vidrec.errors import error_from_response
from vidrec.live import DEFAULT_LINGER_S

__all__ = ["describe_error", "format_answer", "format_models", "print_event", "ws_url"]


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "client",
        help="talk to a running server (upload a clip, stream a file, list models)",
        description="Talk to a running vidrec server over HTTP and WebSocket.",
    )
    commands = parser.add_subparsers(dest="client_command", required=True, metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--url",
            help=f"the server's base URL (default: ${URL_ENV}, else {DEFAULT_URL})",
        )
        sub.add_argument("--api-key", help=f"API key (default: ${API_KEY_ENV})")
        sub.add_argument("--json", action="store_true", help="print the server's JSON")
        sub.add_argument(
            "--timeout", type=float, default=120.0, help="HTTP timeout in seconds (default 120)"
        )
        sub.add_argument(
            "--retries",
            type=int,
            default=3,
            help="retries of a 429/503 answer or an unreachable server (default 3)",
        )

    clip = commands.add_parser("clip", help="upload a clip and print its labels")
    clip.add_argument("file", type=Path, metavar="FILE", help="a video file")
    clip.add_argument("--model", help="model name (default: the server's clip default)")
    clip.add_argument(
        "--top-k",
        type=int,
        default=limits.DEFAULT_TOP_K,
        help=f"labels to return, 1..{limits.MAX_TOP_K} (default {limits.DEFAULT_TOP_K})",
    )
    clip.add_argument(
        "--clips",
        type=int,
        default=limits.DEFAULT_CLIPS,
        help=f"temporal views, 1..{limits.MAX_CLIPS} (default {limits.DEFAULT_CLIPS})",
    )
    clip.add_argument(
        "--crops",
        type=int,
        default=limits.DEFAULT_CROPS,
        choices=limits.CROPS,
        help="spatial views: 1 (the full frame) or 3",
    )
    clip.add_argument("--no-wait", action="store_true", help="answer at once with a job id (202)")
    common(clip)
    clip.set_defaults(handler=run_clip)

    job = commands.add_parser("job", help="a clip job's state and answer")
    job.add_argument("job_id", metavar="ID")
    common(job)
    job.set_defaults(handler=run_job)

    stream = commands.add_parser(
        "stream", help="send a video file's frames over the live WebSocket, print the events"
    )
    stream.add_argument("file", type=Path, metavar="FILE", help="a video file")
    stream.add_argument("--model", help="live model (default: the server's live default)")
    stream.add_argument(
        "--budget",
        help="tokens recomputed per frame: a fraction, 'all', or a JSON budget (default: server's)",
    )
    stream.add_argument(
        "--fps", type=float, default=10.0, help="frames sent per second; 0: as fast as possible"
    )
    stream.add_argument("--stride", type=int, help="labels every N frames (default: server's)")
    stream.add_argument("--max-frames", type=int, help="send at most this many frames")
    stream.add_argument(
        "--short-side", type=int, help="resize frames to this short side before sending"
    )
    stream.add_argument(
        "--linger",
        type=float,
        default=DEFAULT_LINGER_S,
        help="after the last frame, wait this long without events before closing (default 3)",
    )
    common(stream)
    stream.set_defaults(handler=run_stream)

    rtsp = commands.add_parser("rtsp", help="read an RTSP camera on the server, follow its events")
    rtsp.add_argument("source", metavar="URL", help="rtsp:// or rtsps:// URL")
    rtsp.add_argument("--model", help="live model (default: the server's live default)")
    rtsp.add_argument("--budget", help="a fraction, 'all', or a JSON budget (default: server's)")
    rtsp.add_argument("--stride", type=int, help="labels every N frames (default: server's)")
    rtsp.add_argument("--max-events", type=int, help="stop after this many labels events")
    rtsp.add_argument(
        "--keep", action="store_true", help="leave the session running when this command stops"
    )
    common(rtsp)
    rtsp.set_defaults(handler=run_rtsp)

    models = commands.add_parser("models", help="the models the server's workers serve")
    common(models)
    models.set_defaults(handler=run_models)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    """The client's arguments; raises ValueError for bad ones (exit status 2)."""
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout}")
    if args.retries < 0:
        raise ValueError(f"--retries must be 0 or more, got {args.retries}")
    return {
        "url": args.url,
        "api_key": args.api_key,
        "timeout": args.timeout,
        "retry": RetryPolicy(max_retries=args.retries),
    }


def _client(args: argparse.Namespace) -> Client:
    return Client(**_options(args))


def _wire(model: BaseModel) -> dict[str, Any]:
    """A parsed answer as the server sent it (its fields, unknown ones included)."""
    data: dict[str, Any] = model.model_dump(mode="json", by_alias=True, exclude_unset=True)
    return data


def describe_error(response: Any) -> str:
    """``HTTP 415 unsupported_media_type: <the server's message>`` (plus Retry-After) for an
    ``httpx.Response`` refusal."""
    return str(error_from_response(response))


def _fail(message: str) -> int:
    print(f"vidrec client: {message}", file=sys.stderr, flush=True)
    return 1


def run_clip(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ValueError(f"no file at {args.file}")
    with _client(args) as client:
        try:
            start = time.perf_counter()
            answer = client.classify(
                args.file,
                model=args.model or None,
                top_k=args.top_k,
                clips=args.clips,
                crops=args.crops,
                wait=not args.no_wait,  # type: ignore[call-overload]
            )
            elapsed_ms = (time.perf_counter() - start) * 1000.0
        except VidrecError as exc:
            return _fail(f"{args.file}: {exc}")
    body = _wire(answer)
    if args.json:
        print(json.dumps(body, indent=2))
    elif isinstance(answer, JobAccepted):
        print(f"{args.file}: job {answer.job_id} {answer.status}; poll {answer.status_url}")
    else:
        print(format_answer(str(args.file), body, elapsed_ms))
    return 0


def run_job(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            view = client.job(args.job_id)
        except VidrecError as exc:
            return _fail(str(exc))
    if args.json:
        print(json.dumps(_wire(view), indent=2))
        return 0
    if view.status == "done" and view.result is not None:
        print(format_answer(view.filename or args.job_id, _wire(view.result), None))
    elif view.status == "failed":
        code, message = (view.error.code, view.error.message) if view.error else (None, None)
        return _fail(f"job {args.job_id} failed: {code}: {message}")
    else:
        print(f"job {args.job_id}: {view.status}")
    return 0


def format_answer(name: str, body: dict[str, Any], elapsed_ms: float | None) -> str:
    """A clip answer for people: labels with scores, then timing and compute."""
    job = f" (job {body['job_id']})" if body.get("job_id") else ""
    lines = [f"{name}: model {body.get('model')}{job}"]
    labels = body.get("labels") or []
    width = max((len(str(item.get("label", ""))) for item in labels), default=0)
    for item in labels:
        lines.append(f"  {str(item.get('label', '')).ljust(width)}  {float(item['score']):.3f}")
    timing = body.get("timing_ms") or {}
    parts = [f"{key} {float(value):.1f} ms" for key, value in timing.items() if _number(value)]
    if elapsed_ms is not None:
        parts.append(f"round trip {elapsed_ms:.1f} ms")
    if parts:
        lines.append("timing: " + ", ".join(parts))
    compute = body.get("compute") or {}
    if compute:
        lines.append("compute: " + ", ".join(_compute_part(k, v) for k, v in compute.items()))
    return "\n".join(lines)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _compute_part(key: str, value: Any) -> str:
    if key.endswith("gmacs") and _number(value):
        return f"{float(value):.3f} {key.replace('_', ' ').replace('gmacs', 'GMACs')}"
    return f"{key} {value}"


def run_models(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            listing = client.models()
        except VidrecError as exc:
            return _fail(str(exc))
    body = _wire(listing)
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    print(format_models(body))
    return 0


def format_models(body: dict[str, Any]) -> str:
    """``GET /v1/models`` as a table, then the defaults and the workers."""
    defaults = body.get("defaults") or {}
    header = ("model", "family", "frames", "px", "GMACs/clip", "labels", "serves", "default")
    rows: list[tuple[str, ...]] = []
    for row in body.get("models") or []:
        serving = row.get("serving") or {}
        serves = [role for role in ("clip", "live") if serving.get(role)]
        default = [role for role in ("clip", "live") if defaults.get(role) == row.get("name")]
        gmacs = row.get("gmacs_per_clip")
        rows.append(
            (
                str(row.get("name")),
                str(row.get("family", "")),
                str(row.get("frames", "")),
                str(row.get("img_size", "")),
                f"{gmacs:.3f}" if _number(gmacs) else "",
                str(len(row.get("labels") or [])),
                ",".join(serves),
                ",".join(default),
            )
        )
    lines = _table(header, rows)
    workers = body.get("workers") or []
    lines.append(f"{len(workers)} live worker(s): {', '.join(workers) or 'none'}")
    return "\n".join(lines)


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]

    def line(row: tuple[str, ...]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()

    return [line(header), "  ".join("-" * w for w in widths), *(line(r) for r in rows)]


# Streams.


def _summary(stats: StreamStats) -> dict[str, Any]:
    return {
        "type": "summary",
        "frames_sent": stats.sent,
        "labels_events": stats.labels,
        "errors": stats.errors,
        "gmacs": stats.gmacs,
        "dense_gmacs": stats.dense_gmacs,
    }


def print_event(event: dict[str, Any], as_json: bool) -> None:
    """One server event: JSON as received, or a line for people (errors on stderr)."""
    if as_json:
        print(json.dumps(event), flush=True)
        return
    kind = event.get("type")
    if kind == "labels":
        labels = "  ".join(
            f"{item.get('label')} {float(item.get('score', 0.0)):.2f}"
            for item in event.get("labels") or []
        )
        c = event.get("compute") or {}
        latency = event.get("latency_ms")
        extra = f", {latency:.0f} ms" if _number(latency) else ""
        if event.get("dropped"):
            extra += f", {event['dropped']} dropped"
        print(
            f"frame {event.get('frame_index', '?'):>6}  {labels}  |  "
            f"{float(c.get('gmacs', 0.0)):.3f} of {float(c.get('dense_gmacs', 0.0)):.3f} GMACs, "
            f"{float(c.get('recompute_fraction', 0.0)):.0%} tokens{extra}",
            flush=True,
        )
    elif kind == "session":
        # The live socket's session event names the window; the events socket's (a session's
        # GET body, for RTSP sessions) does not.
        window = f" over {event['window']}" if event.get("window") else ""
        print(
            f"session {event.get('session_id')}: model {event.get('model')}, labels every "
            f"{event.get('stride')} frames{window}, budget "
            f"{json.dumps(event.get('budget'))}, worker {event.get('owner')}",
            flush=True,
        )
    elif kind == "error":
        print(
            f"vidrec client: error {event.get('code')}: {event.get('message')}",
            file=sys.stderr,
            flush=True,
        )
    else:
        rest = {k: v for k, v in event.items() if k != "type"}
        print(f"{kind}: {json.dumps(rest)}", flush=True)


def _budget_value(text: str) -> dict[str, Any]:
    """``--budget`` in its JSON form, checked here so a typo fails before connecting."""
    try:
        return parse_budget_text(text)
    except ValueError as err:
        raise ValueError(f"--budget: {err}") from None


def run_stream(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ValueError(f"no file at {args.file}")
    if not (math.isfinite(args.fps) and args.fps >= 0):
        raise ValueError(f"--fps must be 0 or positive, got {args.fps}")
    for name in ("stride", "max_frames", "short_side"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    budget = _budget_value(args.budget) if args.budget is not None else None
    options = _options(args)
    frames = video_frames(args.file, short_side=args.short_side, max_frames=args.max_frames)
    stats = StreamStats()
    interrupted = False
    try:
        asyncio.run(_stream(args, options, budget, frames, stats))
    except VidrecError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        interrupted = True
    if args.json:
        print(json.dumps(_summary(stats)), flush=True)
    else:
        saved = 1.0 - stats.gmacs / stats.dense_gmacs if stats.dense_gmacs else 0.0
        print(
            f"{stats.sent} frames sent, {stats.labels} labels events; {stats.gmacs:.3f} GMACs "
            f"spent of {stats.dense_gmacs:.3f} dense ({saved:.0%} saved)",
            flush=True,
        )
    if interrupted:
        return 130
    return 1 if stats.sent and not stats.labels else 0


async def _stream(
    args: argparse.Namespace,
    options: dict[str, Any],
    budget: dict[str, Any] | None,
    frames: Any,
    stats: StreamStats,
) -> None:
    async with (
        AsyncClient(**options) as client,
        client.live(model=args.model or None, budget=budget, stride=args.stride) as stream,
    ):
        stream.stats = stats  # the caller prints the summary, even after Ctrl-C
        assert stream.session is not None
        print_event(_wire(stream.session), args.json)
        stream.send_frames(frames, fps=args.fps, close=True, linger_s=args.linger)
        async for event in stream:
            print_event(_wire(event), args.json)


def run_rtsp(args: argparse.Namespace) -> int:
    budget = _budget_value(args.budget) if args.budget is not None else None
    with _client(args) as client:
        try:
            session = client.open_rtsp(
                args.source, model=args.model or None, budget=budget, stride=args.stride
            )
        except VidrecError as exc:
            return _fail(str(exc))
        if not args.json:
            print(
                f"session {session.session_id}: model {session.model}, worker "
                f"{session.owner}, source {session.source}",
                flush=True,
            )
        status = 0
        labels = 0
        try:
            for event in client.events(session.session_id):
                print_event(_wire(event), args.json)
                if isinstance(event, LabelsEvent):
                    labels += 1
                    if args.max_events is not None and labels >= args.max_events:
                        break
        except VidrecError as exc:
            status = _fail(str(exc))
        except KeyboardInterrupt:
            pass
        finally:
            if not args.keep:
                try:
                    client.close(session.session_id)
                except VidrecError:
                    pass
                else:
                    if not args.json:
                        print(f"session {session.session_id} stopped", flush=True)
    return status
