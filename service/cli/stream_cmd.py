"""``vidrec stream``: print live labels from an RTSP camera or a video file, in-process.

The frames go one by one through a ``LiveRunner`` (the Eventful engine the workers use), so the
labels, the compute budget and the GMACs printed are those a live session of the service has.
An RTSP source is read by ``RtspReader`` behind the source-URL policy (loopback and private
addresses only with ``--allow-private``) and may drop frames when the model is slower than the
camera; a file is read frame by frame without dropping any.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any, BinaryIO

import av
import av.error
import numpy as np
import numpy.typing as npt

from model_core.eventful import Budget
from service.budget import default_budget, parse_budget_text
from service.inference import (
    LIVE_RULE,
    LiveEvent,
    LiveRunner,
    ModelCatalog,
    budget_to_dict,
    is_live,
    parse_budget,
    pick_default,
    read_configs,
)
from service.ingest import (
    IngestError,
    RtspReader,
    RtspSettings,
    StreamState,
    UrlPolicy,
    check_source_url,
)
from service.ingest.convert import scaled_size, to_rgb

SESSION = "stream"


def add_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "stream",
        help="print live labels from an RTSP URL or a video file",
        description=(
            "Print labels live from an rtsp:// or rtsps:// URL or a local video file, with the "
            "Eventful engine under a compute budget, in this process."
        ),
    )
    parser.add_argument("source", metavar="SOURCE", help="rtsp:// or rtsps:// URL, or a file")
    parser.add_argument("--model", help="live bundle name (default: the live default of the dir)")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=os.environ.get("VIDREC_MODELS_DIR") or None,  # argparse applies type=Path
        help="directory of bundles (default: VIDREC_MODELS_DIR or the shipped demo ones)",
    )
    parser.add_argument(
        "--budget",
        help=(
            "tokens recomputed per frame: a fraction in (0, 1], 'all', or JSON such as "
            "'{\"tokens\": 20}' or '{\"threshold\": 0.1}' (default: the budget the model's "
            "bundle recommends, else 0.25)"
        ),
    )
    parser.add_argument("--stride", type=int, default=4, help="labels every N frames (default 4)")
    parser.add_argument("--top-k", type=int, default=3, help="labels per event (default: 3)")
    parser.add_argument(
        "--fps", type=float, default=10.0, help="frames per second taken from RTSP (default 10)"
    )
    parser.add_argument("--max-frames", type=int, help="stop after this many frames")
    parser.add_argument(
        "--allow-private",
        action="store_true",
        help="allow RTSP hosts on loopback and private networks (refused by default)",
    )
    parser.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:N or auto (cuda when available)"
    )
    parser.add_argument(
        "--dtype",
        default="auto",
        choices=("auto", "float32", "bfloat16", "float16"),
        help="the models' floating type (default auto: bfloat16 on CUDA GPUs with native "
        "bfloat16, else float32), as VIDREC_DTYPE for workers",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object per line")
    parser.set_defaults(handler=run)


def parse_budget_arg(text: str) -> Budget:
    """``0.25``, ``all`` / ``keep_all`` or a JSON budget object, as the service takes them."""
    try:
        return parse_budget(parse_budget_text(text))
    except ValueError as err:
        raise ValueError(f"--budget: {err}") from None


def is_rtsp(source: str) -> bool:
    return source.lower().startswith(("rtsp://", "rtsps://"))


def run(args: argparse.Namespace) -> int:
    budget = parse_budget_arg(args.budget) if args.budget is not None else None
    if args.stride < 1:
        raise ValueError(f"--stride must be at least 1, got {args.stride}")
    if args.max_frames is not None and args.max_frames < 1:
        raise ValueError(f"--max-frames must be at least 1, got {args.max_frames}")
    if not (math.isfinite(args.fps) and args.fps > 0):
        raise ValueError(f"--fps must be positive, got {args.fps}")
    policy = UrlPolicy(allow_loopback=True, allow_private=True) if args.allow_private else None
    # The source is checked before any model is loaded.
    if is_rtsp(args.source):
        try:
            check_source_url(args.source, policy or UrlPolicy())
        except IngestError as err:
            hint = "" if args.allow_private else " (--allow-private allows loopback and private)"
            raise ValueError(f"{err.message}{hint}") from err
        video = None
    elif "://" in args.source:
        raise ValueError(f"{args.source!r}: sources are rtsp:// or rtsps:// URLs or local files")
    else:
        video = VideoFile.open(Path(args.source))
    try:
        return _stream(args, budget, policy, video)
    finally:
        if video is not None:
            video.close()


def _stream(
    args: argparse.Namespace,
    budget: Budget | None,
    policy: UrlPolicy | None,
    video: VideoFile | None,
) -> int:
    configs = read_configs(args.models_dir)
    live = [n for n, config in configs.items() if is_live(config)]
    name = args.model or pick_default(configs, "live")
    if name is None or (name in configs and name not in live):
        which = f"model {name!r} cannot stream" if name else "no model can stream"
        raise ValueError(f"{which} ({LIVE_RULE}); live models: {', '.join(live) or 'none'}")
    catalog = ModelCatalog.load(args.models_dir, [name], args.device, dtype=args.dtype)
    entry = catalog.resolve(name, "live")
    if budget is None:
        budget = parse_budget(default_budget(None, entry.recommended_budget))
    runner = LiveRunner(entry, capacity=1, stride=args.stride, top_k=args.top_k)
    runner.open(SESSION, budget)
    short_side = entry.config.preprocessing.resize_size

    frames: Generator[tuple[float, npt.NDArray[np.uint8]], None, None]
    if video is None:
        reader = RtspReader(
            args.source, RtspSettings(target_fps=args.fps, short_side=short_side), policy
        )
        frames = _rtsp_frames(reader)
        source = reader.status().url
    else:
        frames = video.frames(short_side)
        source = args.source
    header = {
        "type": "session",
        "source": source,
        "model": entry.name,
        "stride": runner.stride,
        "window": runner.window,
        "budget": budget_to_dict(budget),
    }
    if args.json:
        print(json.dumps(header), flush=True)
    else:
        print(
            f"{source}: model {entry.name}, labels every {runner.stride} frames over the last "
            f"{runner.window}, budget {json.dumps(header['budget'])}",
            flush=True,
        )

    count, error = 0, None
    try:
        for arrived, image in frames:
            event = runner.step({SESSION: image})[SESSION]
            count += 1
            if event is not None:
                _print_event(event, (time.monotonic() - arrived) * 1000.0, args.json)
            if args.max_frames is not None and count >= args.max_frames:
                break
    except KeyboardInterrupt:
        pass
    except SourceFailedError as err:
        error = str(err)
    finally:
        frames.close()

    totals = runner.totals(SESSION)
    if args.json:
        end: dict[str, Any] = {"type": "end", "frames": count, "totals": totals.to_dict()}
        if error is not None:
            end["error"] = error
        print(json.dumps(end), flush=True)
    else:
        saved = 1.0 - totals.gmacs / totals.dense_gmacs if totals.dense_gmacs else 0.0
        print(
            f"{count} frames; {totals.gmacs:.3f} GMACs spent of {totals.dense_gmacs:.3f} dense "
            f"({saved:.0%} saved)",
            flush=True,
        )
    if error is not None:
        print(f"vidrec stream: {error}", file=sys.stderr)
        return 1
    if count == 0:
        print(f"vidrec stream: no frames from {source}", file=sys.stderr)
        return 1
    return 0


class SourceFailedError(RuntimeError):
    """The RTSP reader gave up on its source."""


def _print_event(event: LiveEvent, latency_ms: float, as_json: bool) -> None:
    if as_json:
        body = event.to_dict()
        del body["session_id"]
        body["model"] = event.model
        body["latency_ms"] = latency_ms
        print(json.dumps(body), flush=True)
        return
    labels = "  ".join(f"{label} {score:.2f}" for label, score in event.labels)
    c = event.compute
    print(
        f"frame {event.frame_index:>6}  {labels}  |  {c.gmacs:.3f} of {c.dense_gmacs:.3f} GMACs, "
        f"{c.recompute_fraction:.0%} tokens, {latency_ms:.0f} ms",
        flush=True,
    )


def _rtsp_frames(
    reader: RtspReader,
) -> Generator[tuple[float, npt.NDArray[np.uint8]], None, None]:
    """(arrival time, frame) from the reader until it stops or fails; stops it when closed."""
    reader.start()
    try:
        while True:
            frame = reader.read(timeout=0.5)
            if frame is not None:
                yield frame.received_at, frame.image
                continue
            status = reader.status()
            if status.state is StreamState.FAILED:
                reason = status.last_error.message if status.last_error else "unknown error"
                raise SourceFailedError(f"the source {status.url} failed: {reason}")
            if status.state.is_terminal:
                return
    finally:
        reader.stop()


class VideoFile:
    """A local video file read frame by frame.

    Python opens the file and FFmpeg reads a file object, so a name is never taken for a URL.
    """

    def __init__(self, path: Path, handle: BinaryIO, container: Any) -> None:
        self.path = path
        self._handle = handle
        self._container = container

    @classmethod
    def open(cls, path: Path) -> VideoFile:
        """Opens ``path`` and finds its video stream.

        Raises:
            ValueError: no such file, not a video, or no video stream in it.
        """
        if not path.is_file():
            raise ValueError(f"no file at {path}")
        handle = path.open("rb")
        try:
            container = av.open(handle, mode="r")
        except av.error.FFmpegError as err:
            handle.close()
            raise ValueError(f"cannot read {path} as a video: {err}") from err
        if not container.streams.video:
            container.close()
            handle.close()
            raise ValueError(f"{path} holds no video stream")
        return cls(path, handle, container)

    def frames(self, short_side: int) -> Generator[tuple[float, npt.NDArray[np.uint8]], None, None]:
        """(arrival time, RGB frame) for every frame, resized in the decoder's scaler."""
        try:
            for frame in self._container.decode(self._container.streams.video[0]):
                size = scaled_size(frame.width, frame.height, short_side)
                yield time.monotonic(), to_rgb(frame, size)
        except av.error.FFmpegError as err:
            raise SourceFailedError(f"cannot decode {self.path}: {err}") from err

    def close(self) -> None:
        """Closes the container and the file; closing twice is fine."""
        self._container.close()
        self._handle.close()
