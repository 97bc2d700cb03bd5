"""Fixtures for the inference tests: tiny bundles written once, a catalog loaded once."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# --import-mode=importlib keeps test directories off sys.path; the helper beside this file is
# imported by name (the CLI tests import it too).
_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from inference_bundles import write_bundles  # noqa: E402

from service.inference import ModelCatalog  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread(one_thread: None) -> None:
    """Every test here runs tiny models in-process (see tests/conftest.py)."""


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_bundles(tmp_path_factory.mktemp("bundles"))


@pytest.fixture(scope="session")
def catalog(models_dir: Path) -> ModelCatalog:
    return ModelCatalog.load(models_dir, device="cpu")
