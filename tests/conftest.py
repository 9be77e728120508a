import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the checkout: tests.helpers

import converse_basicsr  # noqa: E402,F401  (compat fixes and registration)
from tests.helpers.shared_files import shared_path  # noqa: E402


@pytest.fixture(scope='session')
def official_outputs():
    return torch.load(shared_path('reference', 'official_outputs.pt'), weights_only=False)


@pytest.fixture(scope='session')
def zoo_dir():
    return shared_path('reference', 'zoo')


@pytest.fixture(scope='module')
def one_thread():
    """One intra-op thread for a module (``pytestmark = pytest.mark.usefixtures('one_thread')``): on a shared
    CI machine OpenMP spinning makes 2 threads many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
