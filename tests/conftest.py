"""Fixtures every test directory may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """One torch intra-op thread for a module, restored afterwards.

    The models under test are tiny: on two shared cores a second thread spends more time handing
    work over and spinning than computing. Directories that run models in-process request it
    from an autouse fixture; a test module with ``pytestmark = usefixtures("one_thread")``.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
