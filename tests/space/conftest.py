"""Model tests run on tiny tensors: one intra-op thread is faster, and far faster on a busy machine."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
