"""Limits and settings of the ingest path: frozen dataclasses the gateway and worker configure."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

# FFmpeg demuxer names (as in ``ffmpeg -formats``) for the accepted containers. "mov,mp4,..." is
# one demuxer for mp4 and mov; "matroska,webm" one for mkv and webm.
DEFAULT_FORMATS: frozenset[str] = frozenset(
    {"mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi"}
)

# Canonical FFmpeg codec names (``AVCodecDescriptor.name``), not decoder names such as libdav1d.
DEFAULT_CODECS: frozenset[str] = frozenset(
    {"h264", "hevc", "vp8", "vp9", "av1", "mpeg4", "mjpeg", "mpeg2video", "mpeg1video"}
)

# RTSP's registered ports (554, and 322 for RTSP over TLS) and the common alternative 8554.
DEFAULT_SOURCE_PORTS: frozenset[int] = frozenset({554, 8554, 322})


@dataclass(frozen=True)
class ClipLimits:
    """Bounds on an uploaded clip; every one is checked before or during decoding.

    Attributes:
        max_bytes: Size of the upload.
        max_duration_s: Duration of the video stream (declared and indexed).
        max_width: Width of a frame, before rotation.
        max_height: Height of a frame, before rotation.
        max_pixels: Width times height, so a 4096x4096 frame can be refused while 4096x2160 passes.
        max_frames: Frames in the clip's index, and frames decoded in one call.
        max_pixel_frames: The decode work: width times height times the frames in the clip's
            index (at probe time), and summed over the frames decoded in one call. A clip of
            few bytes can hold hundreds of large frames that each cost full decoding.
        max_decode_seconds: Wall time of one decode call, open to last frame.
        formats: Accepted FFmpeg demuxers; nothing else is even probed.
        codecs: Accepted video codecs.
    """

    max_bytes: int = 200 * 1024 * 1024
    max_duration_s: float = 300.0
    max_width: int = 3840
    max_height: int = 3840
    max_pixels: int = 3840 * 2160
    max_frames: int = 18_000
    max_pixel_frames: int = 2_000_000_000
    max_decode_seconds: float = 30.0
    formats: frozenset[str] = DEFAULT_FORMATS
    codecs: frozenset[str] = DEFAULT_CODECS

    def __post_init__(self) -> None:
        names = ("max_bytes", "max_width", "max_height", "max_pixels", "max_frames")
        for name in (*names, "max_pixel_frames"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_duration_s <= 0 or self.max_decode_seconds <= 0:
            raise ValueError("max_duration_s and max_decode_seconds must be positive")


@dataclass(frozen=True)
class FrameLimits:
    """Bounds on one WebSocket frame.

    Attributes:
        max_bytes: Size of the whole binary message, header included.
        max_header_bytes: Size of the optional JSON header line.
        max_width: Image width.
        max_height: Image height.
        max_pixels: Width times height; checked before any pixel is decoded.
    """

    max_bytes: int = 2 * 1024 * 1024
    max_header_bytes: int = 1024
    max_width: int = 1920
    max_height: int = 1920
    max_pixels: int = 1920 * 1080


@dataclass(frozen=True)
class UrlPolicy:
    """Which hosts a source URL may point at.

    Names are resolved before the check and every resolved address must pass. Loopback, private
    (RFC 1918, unique-local, shared address space) and link-local addresses are refused unless the
    matching flag is set or an ``allow_networks`` entry covers them; unspecified, multicast and
    reserved addresses are always refused.

    Attributes:
        schemes: Accepted URL schemes.
        allow_hosts: When non-empty, the host name (or a parent domain written as ``.example.com``)
            must be listed here.
        deny_hosts: Host names (or parent domains as ``.example.com``) always refused.
        allow_networks: CIDR blocks allowed even when their category is denied (a camera VLAN,
            ``127.0.0.1/32`` for tests).
        deny_networks: CIDR blocks always refused.
        allow_loopback: Accept 127.0.0.0/8 and ::1.
        allow_private: Accept private, unique-local and shared (100.64.0.0/10) addresses.
        allow_link_local: Accept 169.254.0.0/16 (cloud metadata lives there) and fe80::/10.
        allow_ports: Ports a public host may be reached on (empty: any); addresses opened by
            the flags or ``allow_networks`` keep every port.
        resolve_timeout_s: Bound on the name lookup.
        max_url_length: Longer URLs are refused before parsing.
    """

    schemes: frozenset[str] = frozenset({"rtsp", "rtsps"})
    allow_hosts: frozenset[str] = frozenset()
    deny_hosts: frozenset[str] = frozenset()
    allow_networks: tuple[str, ...] = ()
    deny_networks: tuple[str, ...] = ()
    allow_loopback: bool = False
    allow_private: bool = False
    allow_link_local: bool = False
    allow_ports: frozenset[int] = DEFAULT_SOURCE_PORTS
    resolve_timeout_s: float = 5.0
    max_url_length: int = 2048
    _allow_nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, repr=False, compare=False
    )
    _deny_nets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Parse once, so a bad CIDR fails at configuration time rather than on the first request.
        object.__setattr__(
            self, "_allow_nets", tuple(ipaddress.ip_network(n) for n in self.allow_networks)
        )
        object.__setattr__(
            self, "_deny_nets", tuple(ipaddress.ip_network(n) for n in self.deny_networks)
        )

    @property
    def allow_nets(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Parsed ``allow_networks``."""
        return self._allow_nets

    @property
    def deny_nets(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """Parsed ``deny_networks``."""
        return self._deny_nets


@dataclass(frozen=True)
class RtspSettings:
    """How an RTSP source is read.

    Attributes:
        transport: ``"tcp"`` (default: survives NAT and loss without smearing) or ``"udp"``.
        open_timeout_s: Bound on connecting and on the RTSP handshake.
        read_timeout_s: Longest silence while streaming before the connection counts as lost.
        backoff_initial_s: First reconnect delay.
        backoff_max_s: Cap on the reconnect delay.
        backoff_multiplier: Growth of the delay per consecutive failure.
        jitter: Fraction of the delay randomised (+/-), so cameras that dropped together do not
            reconnect in lockstep.
        max_attempts: Consecutive failed connections before the reader gives up (state
            ``failed``); ``None`` retries forever. A frame received resets the count.
        buffer_size: Frames held for the consumer; when full the oldest is dropped.
        target_fps: Frames per second handed on; ``None`` hands on every frame.
        short_side: Resize so the shorter side has this many pixels (in the decoder's scaler);
            ``None`` keeps the source size.
    """

    transport: str = "tcp"
    open_timeout_s: float = 10.0
    read_timeout_s: float = 10.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    backoff_multiplier: float = 2.0
    jitter: float = 0.2
    max_attempts: int | None = 10
    buffer_size: int = 2
    target_fps: float | None = None
    short_side: int | None = None

    def __post_init__(self) -> None:
        if self.transport not in ("tcp", "udp"):
            raise ValueError("transport must be 'tcp' or 'udp'")
        if self.buffer_size < 1:
            raise ValueError("buffer_size must be at least 1")
        if self.target_fps is not None and self.target_fps <= 0:
            raise ValueError("target_fps must be positive")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter must be in [0, 1)")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
