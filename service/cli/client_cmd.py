"""``vidrec client ...``: talk to a running vidrec server as any client would.

- ``clip FILE``: upload a clip (multipart ``POST /v1/clips``), print its labels, timing and compute.
- ``job ID``: a clip job's state and answer (``GET /v1/jobs/{id}``).
- ``stream FILE``: read a video file frame by frame, send each frame as a JPEG over the live
  WebSocket (``/v1/streams/live``) at ``--fps``, print the events as they come.
- ``rtsp URL``: register an RTSP camera (``POST /v1/streams``) and follow its events.
- ``models``: the models the live workers serve (``GET /v1/models``).

A refusal is printed with the server's code and message and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import math
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import httpx

from service.budget import parse_budget_text

DEFAULT_URL = "http://127.0.0.1:8000"
JPEG_QUALITY = 90
# After the last frame is sent, the stream ends once no event came for this long.
DEFAULT_LINGER_S = 3.0


class ClientError(Exception):
    """A refusal or a transport failure, already phrased for people."""


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "client",
        help="talk to a running server (upload a clip, stream a file, list models)",
        description="Talk to a running vidrec server over HTTP and WebSocket.",
    )
    commands = parser.add_subparsers(dest="client_command", required=True, metavar="ACTION")

    def common(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--url", default=DEFAULT_URL, help=f"the server's base URL (default: {DEFAULT_URL})"
        )
        sub.add_argument("--json", action="store_true", help="print the server's JSON")
        sub.add_argument(
            "--timeout", type=float, default=120.0, help="HTTP timeout in seconds (default 120)"
        )

    clip = commands.add_parser("clip", help="upload a clip and print its labels")
    clip.add_argument("file", type=Path, metavar="FILE", help="a video file")
    clip.add_argument("--model", help="model name (default: the server's clip default)")
    clip.add_argument("--top-k", type=int, default=5, help="labels to return (default 5)")
    clip.add_argument("--clips", type=int, default=1, help="temporal views (default 1)")
    clip.add_argument("--crops", type=int, default=1, choices=(1, 3), help="spatial views")
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


# HTTP.


def _client(args: argparse.Namespace) -> httpx.Client:
    if args.timeout <= 0:
        raise ValueError(f"--timeout must be positive, got {args.timeout}")
    return httpx.Client(base_url=args.url.rstrip("/"), timeout=args.timeout)


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    """The response, or a ClientError for a transport failure or a refusal (4xx/5xx)."""
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise ClientError(f"cannot reach {client.base_url}: {exc}") from exc
    if response.status_code >= 400:
        raise ClientError(describe_error(response))
    return response


def describe_error(response: httpx.Response) -> str:
    """``HTTP 415 unsupported_media_type: <the server's message>`` (plus Retry-After)."""
    code, message = "", response.text.strip()[:500]
    with contextlib.suppress(ValueError):
        body = response.json()
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = str(error.get("code", ""))
            message = str(error.get("message", message))
    text = f"HTTP {response.status_code}" + (f" {code}" if code else "") + f": {message}"
    retry = response.headers.get("retry-after")
    return text + (f" (retry after {retry} s)" if retry else "")


def _fail(message: str) -> int:
    print(f"vidrec client: {message}", file=sys.stderr, flush=True)
    return 1


def run_clip(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ValueError(f"no file at {args.file}")
    data = {"top_k": str(args.top_k), "clips": str(args.clips), "crops": str(args.crops)}
    data["wait"] = "false" if args.no_wait else "true"
    if args.model:
        data["model"] = args.model
    with _client(args) as client:
        try:
            start = time.perf_counter()
            with args.file.open("rb") as handle:
                files = {"file": (args.file.name, handle, "application/octet-stream")}
                response = _request(client, "POST", "/v1/clips", data=data, files=files)
            body = response.json()
            if response.status_code == 202 and not args.no_wait:
                # The server stopped waiting (its wait timeout): poll the job until it is answered.
                body = _poll_job(client, str(body["job_id"]), args.timeout)
            elapsed_ms = (time.perf_counter() - start) * 1000.0
        except ClientError as exc:
            return _fail(f"{args.file}: {exc}")
    if args.json:
        print(json.dumps(body, indent=2))
    elif "labels" in body:
        print(format_answer(str(args.file), body, elapsed_ms))
    else:
        print(f"{args.file}: job {body['job_id']} {body['status']}; poll {body['status_url']}")
    return 0


def _poll_job(client: httpx.Client, job_id: str, timeout_s: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout_s
    while True:
        body = _request(client, "GET", f"/v1/jobs/{job_id}").json()
        if body.get("status") == "done":
            return {"job_id": job_id, **body["result"]}
        if body.get("status") == "failed":
            error = body.get("error") or {}
            status = error.get("http_status", "")
            raise ClientError(f"HTTP {status} {error.get('code', '')}: {error.get('message', '')}")
        if time.monotonic() > deadline:
            raise ClientError(f"job {job_id} is still {body.get('status')} after {timeout_s} s")
        time.sleep(0.2)


def run_job(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            body = _request(client, "GET", f"/v1/jobs/{args.job_id}").json()
        except ClientError as exc:
            return _fail(str(exc))
    if args.json:
        print(json.dumps(body, indent=2))
        return 0
    status = body.get("status")
    if status == "done" and isinstance(body.get("result"), dict):
        print(format_answer(body.get("filename") or args.job_id, body["result"], None))
    elif status == "failed":
        error = body.get("error") or {}
        return _fail(f"job {args.job_id} failed: {error.get('code')}: {error.get('message')}")
    else:
        print(f"job {args.job_id}: {status}")
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
            body = _request(client, "GET", "/v1/models").json()
        except ClientError as exc:
            return _fail(str(exc))
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


# WebSockets.


def ws_url(base: str, path: str, query: dict[str, str] | None = None) -> str:
    """``ws://`` (or ``wss://``) URL of ``path`` on the server at ``base``."""
    parts = urlsplit(base.rstrip("/"))
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"--url must be http:// or https://, got {base!r}")
    scheme = "wss" if parts.scheme == "https" else "ws"
    return urlunsplit((scheme, parts.netloc, parts.path + path, urlencode(query or {}), ""))


@dataclass
class StreamTally:
    """What a stream did, for the closing summary."""

    sent: int = 0
    events: int = 0
    errors: int = 0
    gmacs: float = 0.0
    dense_gmacs: float = 0.0
    last_frame_index: int = -1
    stride: int = 1
    session: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "type": "summary",
            "frames_sent": self.sent,
            "labels_events": self.events,
            "errors": self.errors,
            "gmacs": self.gmacs,
            "dense_gmacs": self.dense_gmacs,
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


def _tally(tally: StreamTally, event: dict[str, Any]) -> None:
    kind = event.get("type")
    if kind == "session":
        tally.session = event
        if isinstance(event.get("stride"), int):
            tally.stride = max(1, event["stride"])
    elif kind == "labels":
        tally.events += 1
        compute = event.get("compute") or {}
        tally.gmacs += float(compute.get("gmacs", 0.0))
        tally.dense_gmacs += float(compute.get("dense_gmacs", 0.0))
        if isinstance(event.get("frame_index"), int):
            tally.last_frame_index = max(tally.last_frame_index, event["frame_index"])
    elif kind == "error":
        tally.errors += 1


def video_jpegs(path: Path, short_side: int | None, max_frames: int | None) -> Iterator[bytes]:
    """Each frame of a video file as JPEG bytes, in order, none dropped.

    Python opens the file and FFmpeg reads the file object, so a name is never taken for a URL.
    """
    import av
    import av.error

    from service.ingest.convert import scaled_size

    with path.open("rb") as handle:
        try:
            container = av.open(handle, mode="r")
        except av.error.FFmpegError as exc:
            raise ValueError(f"cannot read {path} as a video: {exc}") from exc
        with container:
            if not container.streams.video:
                raise ValueError(f"{path} holds no video stream")
            for count, frame in enumerate(container.decode(container.streams.video[0]), 1):
                size = scaled_size(frame.width, frame.height, short_side)
                if size is not None:
                    frame = frame.reformat(width=size[0], height=size[1])
                buffer = io.BytesIO()
                frame.to_image().save(buffer, format="JPEG", quality=JPEG_QUALITY)
                yield buffer.getvalue()
                if max_frames is not None and count >= max_frames:
                    return


def run_stream(args: argparse.Namespace) -> int:
    if not args.file.is_file():
        raise ValueError(f"no file at {args.file}")
    if not (math.isfinite(args.fps) and args.fps >= 0):
        raise ValueError(f"--fps must be 0 or positive, got {args.fps}")
    for name in ("stride", "max_frames", "short_side"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {value}")
    query = {}
    if args.budget is not None:
        query["budget"] = json.dumps(_budget_value(args.budget))
    if args.model:
        query["model"] = args.model
    if args.stride:
        query["stride"] = str(args.stride)
    url = ws_url(args.url, "/v1/streams/live", query)
    frames = video_jpegs(args.file, args.short_side, args.max_frames)
    tally = StreamTally()
    interrupted = False
    try:
        asyncio.run(_stream(url, frames, args.fps, args.linger, args.json, tally))
    except ClientError as exc:
        return _fail(str(exc))
    except KeyboardInterrupt:
        interrupted = True
    summary = tally.summary()
    if args.json:
        print(json.dumps(summary), flush=True)
    else:
        saved = 1.0 - tally.gmacs / tally.dense_gmacs if tally.dense_gmacs else 0.0
        print(
            f"{tally.sent} frames sent, {tally.events} labels events; {tally.gmacs:.3f} GMACs "
            f"spent of {tally.dense_gmacs:.3f} dense ({saved:.0%} saved)",
            flush=True,
        )
    if interrupted:
        return 130
    return 1 if tally.sent and not tally.events else 0


async def _stream(
    url: str,
    frames: Iterator[bytes],
    fps: float,
    linger_s: float,
    as_json: bool,
    tally: StreamTally,
) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    try:
        async with connect(url, max_size=None, open_timeout=30) as ws:
            first = json.loads(await ws.recv())
            print_event(first, as_json)
            _tally(tally, first)
            if first.get("type") != "session":
                raise ClientError(f"the server refused the stream: {first.get('message', first)}")
            last_event = asyncio.Event()
            receiver = asyncio.create_task(_receive(ws, as_json, tally, last_event))
            try:
                await _send_frames(ws, frames, fps, tally, receiver)
                expected = (tally.sent // tally.stride) * tally.stride
                await _linger(tally, last_event, expected, linger_s, receiver)
                if not receiver.done():
                    with contextlib.suppress(ConnectionClosed):
                        await ws.send(json.dumps({"type": "close"}))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(asyncio.shield(receiver), 5.0)
            finally:
                receiver.cancel()
                await asyncio.gather(receiver, return_exceptions=True)
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise ClientError(f"cannot stream to {url}: {exc}") from exc
    except ConnectionClosed as exc:
        raise ClientError(f"the server closed the stream: {exc}") from exc


async def _send_frames(
    ws: Any, frames: Iterator[bytes], fps: float, tally: StreamTally, receiver: asyncio.Task[None]
) -> None:
    start = time.monotonic()
    index = 0
    while not receiver.done():  # done: the server ended the session
        # Decoding and JPEG encoding run in a thread, so events are printed as they arrive.
        jpeg = await asyncio.to_thread(next, frames, None)
        if jpeg is None:
            return
        if fps > 0:
            delay = start + index / fps - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        await ws.send(jpeg)
        tally.sent += 1
        index += 1


async def _linger(
    tally: StreamTally,
    last_event: asyncio.Event,
    expected: int,
    linger_s: float,
    receiver: asyncio.Task[None],
) -> None:
    """Waits for the labels of the last frames: until the event of the last full stride came,
    or no event came for ``linger_s`` seconds."""
    while not receiver.done() and tally.last_frame_index < expected:
        last_event.clear()
        try:
            await asyncio.wait_for(last_event.wait(), linger_s)
        except TimeoutError:
            return


async def _receive(ws: Any, as_json: bool, tally: StreamTally, last_event: asyncio.Event) -> None:
    from websockets.exceptions import ConnectionClosed

    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            event = json.loads(message)
            _tally(tally, event)
            print_event(event, as_json)
            last_event.set()
            if event.get("type") in ("closed", "end"):
                return


def _budget_value(text: str) -> dict[str, Any]:
    """``--budget`` in its JSON form, checked here so a typo fails before connecting."""
    try:
        return parse_budget_text(text)
    except ValueError as err:
        raise ValueError(f"--budget: {err}") from None


def run_rtsp(args: argparse.Namespace) -> int:
    request: dict[str, Any] = {"source": args.source}
    if args.model:
        request["model"] = args.model
    if args.budget is not None:
        request["budget"] = _budget_value(args.budget)
    if args.stride is not None:
        request["stride"] = args.stride
    with _client(args) as client:
        try:
            session = _request(client, "POST", "/v1/streams", json=request).json()
        except ClientError as exc:
            return _fail(str(exc))
        session_id = str(session["session_id"])
        if not args.json:
            print(
                f"session {session_id}: model {session.get('model')}, worker "
                f"{session.get('owner')}, source {session.get('source')}",
                flush=True,
            )
        url = ws_url(args.url, f"/v1/streams/{session_id}/events")
        status = 0
        try:
            asyncio.run(_follow(url, args.json, args.max_events))
        except ClientError as exc:
            status = _fail(str(exc))
        except KeyboardInterrupt:
            pass
        finally:
            if not args.keep:
                with contextlib.suppress(ClientError):
                    _request(client, "DELETE", f"/v1/streams/{session_id}")
                    if not args.json:
                        print(f"session {session_id} stopped", flush=True)
    return status


async def _follow(url: str, as_json: bool, max_events: int | None) -> None:
    """Prints a session's events until it ends (or ``max_events`` labels events came)."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

    labels = 0
    try:
        async with connect(url, max_size=None, open_timeout=30) as ws:
            async for message in ws:
                event = json.loads(message)
                print_event(event, as_json)
                if event.get("type") == "labels":
                    labels += 1
                    if max_events is not None and labels >= max_events:
                        return
                if event.get("type") in ("end", "closed"):
                    return
                if event.get("type") == "error" and event.get("code") == "session_not_found":
                    raise ClientError(str(event.get("message")))
    except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
        raise ClientError(f"cannot follow {url}: {exc}") from exc
    except ConnectionClosed as exc:
        raise ClientError(f"the server closed the events stream: {exc}") from exc
