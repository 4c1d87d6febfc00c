"""Fixtures shared by every test package."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for a module of tiny-model tests: on a shared 2-core machine more threads only
    oversubscribe it. Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def gsm8k_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A folder holding the small GSM-8K example data the project writes itself (no download)."""
    from noisy_expert_gym.tasks.gsm8k.data import write_example_data

    return str(write_example_data(tmp_path_factory.mktemp("gsm8k")))
