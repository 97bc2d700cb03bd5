#!/usr/bin/env bash
# Installs the Debian packages that vidrec's tests start for real. Does nothing when they are
# present; runs `apt-get update` once before the first install.
set -euo pipefail

packages=(
  # ingest: GStreamer's RTSP server, run by /usr/bin/python3 in tests/service/ingest
  python3-gi
  gir1.2-gst-rtsp-server-1.0
  gstreamer1.0-rtsp
  gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad
  # service: the Redis server the queue tests start when none listens on 127.0.0.1:6379
  redis-server
  # deploy: images built and the compose stack run for real (tests/deploy; runc, since crun
  # fails here; dnsname lets containers find each other by service name; catatonit is the
  # containers' init); promtool
  podman
  buildah
  podman-compose
  runc
  catatonit
  golang-github-containernetworking-plugin-dnsname
  debootstrap
  prometheus
  # gateway: the web page's browser test (Playwright drives this chromium)
  chromium
)

missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${missing[*]} (run as root, or install them)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
