"""Builds the images of docker/compose.yaml with podman where no container registry is reachable.

An air-gapped site (and this project's CI) cannot pull ``python:3.11-slim``, ``redis`` or
``prom/prometheus``. This script makes them from the site's Debian mirror instead:

1. a base image: ``debootstrap --variant=minbase`` with Python 3.11 and its venv, imported with
   ``podman import``; tagged by a hash of its recipe, so a second run finds it and skips the step;
2. Redis, Prometheus and Redis-exporter images on that base, from Debian's ``redis-server``,
   ``prometheus`` and ``prometheus-redis-exporter`` packages (same tags by hash);
3. the vidrec image from ``docker/Dockerfile`` with ``BASE_IMAGE`` set to that base. pip inside
   the build gets the host's pip configuration, the local wheel directories it names and the CA
   certificates as read-only volumes for the build only; none of them lands in the image.

It also writes the ``containers.conf`` podman needs on machines like this one (the ``runc``
runtime, the ``cgroupfs`` cgroup manager, container ulimits no higher than the host's hard
limits: podman's defaults ask for more and fail with ``setrlimit ... operation not permitted``).

Usage (as root)::

    python scripts/local_images.py --workdir /var/tmp/vidrec-deploy

It prints ``NAME=value`` lines (``CONTAINERS_CONF``, ``APP_IMAGE``, ``REDIS_IMAGE``,
``PROMETHEUS_IMAGE``, ``REDIS_EXPORTER_IMAGE``) for ``docker/compose.yaml``, and writes them to
``WORKDIR/images.env``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TOOLS = {
    "podman": "podman",
    "debootstrap": "debootstrap",
    "runc": "runc",
}
SUITE = "bookworm"
# python3-venv: the Dockerfile makes a venv; ca-certificates: pip over HTTPS.
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEFAULT_MIRROR = "http://deb.debian.org/debian"
CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_SERVICE_RECIPES = {
    # The Debian packages' binaries at the paths the compose file's commands name.
    "redis": ("redis-server", 'CMD ["redis-server"]'),
    "prometheus": ("prometheus", 'ENTRYPOINT ["/usr/bin/prometheus"]'),
    "redis-exporter": (
        "prometheus-redis-exporter",
        'ENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]',
    ),
}


class MissingError(RuntimeError):
    """A tool or privilege the build needs is absent; the message says which."""


def log(message: str) -> None:
    print(f"local_images: {message}", file=sys.stderr, flush=True)


def check_tools() -> None:
    """Raises :class:`MissingError` naming every absent tool and the packages providing them."""
    missing = [name for name, exe in TOOLS.items() if shutil.which(exe) is None]
    if missing:
        raise MissingError(
            f"missing {', '.join(missing)}: install Debian's podman, buildah, podman-compose, "
            "runc and debootstrap (scripts/install_system_deps.sh does, as root)"
        )
    if os.geteuid() != 0:
        raise MissingError("debootstrap and rootful podman need root; run as root")


def write_containers_conf(workdir: Path) -> Path:
    """A containers.conf with runc, cgroupfs and ulimits the host allows; returns its path."""
    nofile = min(resource.getrlimit(resource.RLIMIT_NOFILE)[1], 65536)
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], 8192)
    path = workdir / "containers.conf"
    path.write_text(
        "# Written by scripts/local_images.py for this host.\n"
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'cgroup_manager = "cgroupfs"\n'
        'runtime = "runc"\n'
    )
    return path


def apt_mirror() -> str:
    """The first Debian mirror of the host's apt sources (deb822 or one-line format)."""
    candidates: list[Path] = [Path("/etc/apt/sources.list")]
    sources_d = Path("/etc/apt/sources.list.d")
    if sources_d.is_dir():
        candidates += sorted(sources_d.glob("*.sources")) + sorted(sources_d.glob("*.list"))
    for path in candidates:
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            line = line.strip()
            match = re.match(r"^URIs:\s*(\S+)", line) or re.match(
                r"^deb\s+(?:\[[^]]*\]\s+)?(\S+)", line
            )
            if match and "security" not in match.group(1) and "/debian" in match.group(1):
                return match.group(1).rstrip("/")
    return DEFAULT_MIRROR


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]


def run(cmd: Sequence[str], *, env: dict[str, str], stdin: int | None = None) -> None:
    log("$ " + " ".join(cmd))
    # Their output goes to stderr: stdout carries only the NAME=value lines.
    subprocess.run(cmd, check=True, env=env, stdin=stdin, stdout=sys.stderr)


def image_exists(name: str, env: dict[str, str]) -> bool:
    result = subprocess.run(
        ["podman", "image", "exists", name], env=env, capture_output=True, check=False
    )
    return result.returncode == 0


def build_base(workdir: Path, mirror: str, env: dict[str, str]) -> str:
    """The debootstrap base image's name, made when no image of that recipe exists."""
    name = f"localhost/vidrec-base:{digest(SUITE, mirror, 'minbase', *BASE_PACKAGES)}"
    if image_exists(name, env):
        log(f"{name} exists")
        return name
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=workdir))
    try:
        run(
            [
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
            ],
            env=env,
        )
        shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
        shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
        (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        run(
            [
                "podman",
                "import",
                "--change",
                "ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "--change",
                'CMD=["/bin/bash"]',
                "-",
                name,
            ],
            env=env,
            stdin=tar.stdout.fileno(),
        )
        tar.stdout.close()
        if tar.wait() != 0:
            raise RuntimeError("tar of the debootstrap root failed")
    finally:
        shutil.rmtree(rootfs, ignore_errors=True)
    return name


def build_service_image(kind: str, base: str, workdir: Path, env: dict[str, str]) -> str:
    """An image of one Debian package on the base (``redis`` or ``prometheus``)."""
    package, start = _SERVICE_RECIPES[kind]
    containerfile = (
        f"FROM {base}\n"
        "RUN apt-get update -qq \\\n"
        " && DEBIAN_FRONTEND=noninteractive \\\n"
        f"    apt-get install -y -qq --no-install-recommends {package} \\\n"
        " && rm -rf /var/lib/apt/lists/*\n"
        f"{start}\n"
    )
    name = f"localhost/vidrec-{kind}:{digest(containerfile)}"
    if image_exists(name, env):
        log(f"{name} exists")
        return name
    context = workdir / f"{kind}-context"
    context.mkdir(exist_ok=True)
    (context / "Containerfile").write_text(containerfile)
    run(["podman", "build", "--format", "docker", "-t", name, str(context)], env=env)
    return name


def pip_config(workdir: Path) -> Path:
    """The host's effective pip configuration (its files and ``PIP_*`` variables, as
    ``pip config list`` reports them) merged into one file, to be mounted as the build's
    /etc/pip.conf."""
    listed = subprocess.run(
        [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, check=True
    ).stdout
    merged: dict[str, str] = {}
    for line in listed.splitlines():
        match = re.match(r"^(global|install|:env:)\.([\w-]+)='(.*)'$", line)
        if match:
            merged[match.group(2)] = match.group(3)  # listed in order: variables come last
    path = workdir / "pip.conf"
    path.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in merged.items()))
    return path


def pip_mounts(workdir: Path) -> list[str]:
    """``-v`` options giving a build the host's pip configuration and every local path it names
    (wheel directories, file:// indexes, constraints, CA bundle), read-only."""
    config = pip_config(workdir)
    paths: set[str] = set()
    for match in re.finditer(r"(file://)?(/[^\s'\"]+)", config.read_text()):
        local = Path(match.group(2).rstrip("/"))
        if match.group(1):
            local = local.parent  # an index's pages link to files beside it (../files/...)
        if local.exists():
            paths.add(str(local))
    if Path(CA_BUNDLE).is_file():
        paths.add(CA_BUNDLE)
    options = ["-v", f"{config}:/etc/pip.conf:ro"]
    for path in _outermost(paths):
        options += ["-v", f"{path}:{path}:ro"]
    return options


def _outermost(paths: Iterable[str]) -> list[str]:
    """Drops paths inside another path of the set (a mount of the parent carries them)."""
    ordered = sorted(set(paths))
    return [p for p in ordered if not any(p != q and p.startswith(q + "/") for q in ordered)]


def build_app(base: str, tag: str, workdir: Path, env: dict[str, str]) -> str:
    """The vidrec image from docker/Dockerfile on ``base``; podman's layer cache makes a warm
    rebuild only redo the layers whose inputs changed."""
    run(
        [
            "podman",
            "build",
            "--format",
            "docker",  # HEALTHCHECK is a Docker-format field; OCI images drop it
            "--layers",
            "-f",
            str(REPO / "docker/Dockerfile"),
            "--build-arg",
            f"BASE_IMAGE={base}",
            "--build-arg",
            "TORCH_INDEX_URL=",
            *pip_mounts(workdir),
            "-t",
            tag,
            str(REPO),
        ],
        env=env,
    )
    return tag


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/var/tmp/vidrec-deploy"))
    parser.add_argument("--mirror", help="Debian mirror (default: the host's apt sources)")
    parser.add_argument("--tag", default="localhost/vidrec:local", help="the vidrec image's name")
    parser.add_argument("--no-app", action="store_true", help="only the base and service images")
    args = parser.parse_args(argv)
    try:
        check_tools()
    except MissingError as exc:
        log(str(exc))
        return 3
    args.workdir.mkdir(parents=True, exist_ok=True)
    conf = write_containers_conf(args.workdir)
    env = {**os.environ, "CONTAINERS_CONF": str(conf)}
    base = build_base(args.workdir, args.mirror or apt_mirror(), env)
    images = {
        "CONTAINERS_CONF": str(conf),
        "BASE_IMAGE": base,
        "REDIS_IMAGE": build_service_image("redis", base, args.workdir, env),
        "PROMETHEUS_IMAGE": build_service_image("prometheus", base, args.workdir, env),
        "REDIS_EXPORTER_IMAGE": build_service_image("redis-exporter", base, args.workdir, env),
    }
    if not args.no_app:
        images["APP_IMAGE"] = build_app(base, args.tag, args.workdir, env)
    lines = "".join(f"{key}={value}\n" for key, value in images.items())
    (args.workdir / "images.env").write_text(lines)
    print(lines, end="", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
