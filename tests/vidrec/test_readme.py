"""The README's first steps work as written: the commands of "From nothing" that write a sample
clip and classify it, and the Python example of "Use it", against a running ``vidrec serve``."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from serve_support import ServeProcess

from model_core.data import CLASS_NAMES

pytestmark = pytest.mark.integration

README = Path(__file__).resolve().parents[2] / "README.md"
VIDREC = Path(sys.executable).with_name("vidrec")  # the console script beside this Python


def section(title: str) -> str:
    text = README.read_text()
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end >= 0 else None]


def client_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("VIDREC_")}
    return {**env, "VIDREC_URL": url}


def test_from_nothing_writes_a_sample_and_classifies_it(
    sdk_server: ServeProcess, tmp_path: Path
) -> None:
    blocks = re.findall(r"^```\n(.*?)^```", section("From nothing"), re.MULTILINE | re.DOTALL)
    assert blocks[0].split("#")[0].strip() == "make run"
    commands = [line.split("#")[0].strip() for line in blocks[1].splitlines()]
    assert [c.split()[:2] for c in commands] == [
        [".venv/bin/vidrec", "sample"],
        [".venv/bin/vidrec", "client"],
    ]
    outputs = []
    for command in commands:
        argv = shlex.split(command)
        argv[0] = str(VIDREC)
        done = subprocess.run(
            argv, cwd=tmp_path, env=client_env(sdk_server.url), capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout)
    assert outputs[0].startswith("wrote clip.mp4: 8 frames, action rotate_clockwise")
    assert outputs[1].startswith("clip.mp4: model ") and "\ntiming: queue_wait " in outputs[1]


def test_the_python_example_runs(sdk_server: ServeProcess, samples: Path) -> None:
    code = re.search(r"^```python\n(.*?)^```", section("Use it"), re.MULTILINE | re.DOTALL)
    assert code is not None
    done = subprocess.run(
        [sys.executable, "-c", code.group(1)],
        cwd=samples,
        env=client_env(sdk_server.url),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[0] in CLASS_NAMES and "type='labels'" in done.stdout
    assert lines[-1].startswith("type='closed'")
