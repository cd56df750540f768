# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct` checks every output path before any work: an unwritable --out-bag is named at once."""

from __future__ import annotations

import pytest

from conftest import IMAGES
from vggt_ros.offline import main


@pytest.mark.parametrize("bag", ["/proc/vggt-ros-offline-test/run.mcap", "a-file/run.mcap"])
def test_an_unwritable_out_bag_is_named_before_any_work(bag, tmp_path, capsys):
    (tmp_path / "a-file").write_text("not a folder")
    bag = bag if bag.startswith("/") else str(tmp_path / bag)
    arguments = ["--images", str(IMAGES), "--out", str(tmp_path / "out"), "--out-bag", bag]
    assert main([*arguments, "--weights", str(tmp_path / "no-weights")]) == 1  # the weights are never looked at
    error = capsys.readouterr().err
    assert error.startswith(f"error: --out-bag {bag} ") and "Traceback" not in error
