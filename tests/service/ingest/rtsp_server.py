#!/usr/bin/python3
"""A real RTSP server for the ingest tests: GStreamer's gst-rtsp-server serving H.264 MP4 files.

Runs under Debian's /usr/bin/python3, where the ``gi`` bindings live (packages python3-gi,
gir1.2-gst-rtsp-server-1.0, gstreamer1.0-plugins-base/good/bad). It binds 127.0.0.1 only, prints
``READY <port>`` once it listens, and exits on SIGTERM or SIGINT.

Usage::

    /usr/bin/python3 rtsp_server.py --port 8554 --mount cam=/tmp/clip.mp4 [--mount ...]

Each mount streams its file at the file's own pace, from the start, to every client that connects
(one pipeline per client), so a reader that reconnects gets the stream again.
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def _factory(path: str) -> GstRtspServer.RTSPMediaFactory:
    factory = GstRtspServer.RTSPMediaFactory()
    # config-interval=-1 repeats SPS/PPS with every keyframe, so a late joiner can decode.
    factory.set_launch(
        f'( filesrc location="{path}" ! qtdemux ! h264parse '
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    factory.set_shared(False)
    return factory


def main() -> int:
    """Parses arguments, starts the server and runs its main loop."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", action="append", default=[], metavar="NAME=PATH")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    for spec in args.mount:
        name, _, path = spec.partition("=")
        mounts.add_factory(f"/{name}", _factory(path))
    if server.attach(None) == 0:
        print(f"FAILED to listen on 127.0.0.1:{args.port}", flush=True)
        return 2

    loop = GLib.MainLoop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signum, loop.quit)
    print(f"READY {args.port}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
