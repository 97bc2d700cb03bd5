"""scripts/local_images.py's host-facing parts: what it says when tools are missing, the
containers.conf it writes, and the pip configuration it hands a build (tests/deploy runs it
whole)."""

from __future__ import annotations

import importlib.util
import os
import re
import resource
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "local_images.py"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("local_images", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_missing_tools_are_named(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--workdir", str(tmp_path / "w")],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 3
    assert "missing podman, debootstrap, runc" in result.stderr
    assert "scripts/install_system_deps.sh" in result.stderr
    assert result.stdout == ""


def test_containers_conf_stays_within_the_host_limits(tmp_path: Path) -> None:
    text = _script().write_containers_conf(tmp_path).read_text()
    assert 'runtime = "runc"' in text and 'cgroup_manager = "cgroupfs"' in text
    limits = dict(re.findall(r"(\w+)=(\d+):\d+", text))
    assert int(limits["nofile"]) <= resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    assert int(limits["nproc"]) <= resource.getrlimit(resource.RLIMIT_NPROC)[1]


def test_pip_configuration_is_mounted_not_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    wheels = tmp_path / "wheels"
    index = tmp_path / "mirror" / "simple"
    wheels.mkdir()
    index.mkdir(parents=True)
    monkeypatch.setenv("PIP_FIND_LINKS", str(wheels))
    monkeypatch.setenv("PIP_EXTRA_INDEX_URL", f"file://{index}")
    monkeypatch.setenv("PIP_DEFAULT_TIMEOUT", "77")
    options = _script().pip_mounts(tmp_path)
    mounts = [options[i + 1] for i in range(0, len(options), 2)]
    assert all(options[i] == "-v" for i in range(0, len(options), 2))
    assert f"{tmp_path / 'pip.conf'}:/etc/pip.conf:ro" in mounts
    assert f"{wheels}:{wheels}:ro" in mounts
    # A file:// index links to files beside it: its parent directory goes in.
    assert f"{index.parent}:{index.parent}:ro" in mounts
    merged = (tmp_path / "pip.conf").read_text()
    assert merged.startswith("[global]\n")
    assert f"find-links = {wheels}\n" in merged and "default-timeout = 77\n" in merged
