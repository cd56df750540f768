# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""A module-wide fixture for tests of tiny models: import `one_torch_thread` into a test module to use it."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """The tiny models' operations are too small to gain from threads; on a shared 2-core machine they lose."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
