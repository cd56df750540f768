# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct` on exported engines: windows larger than their frame range are refused before any image
is read, with the --max-frames (or --window-size) that fits."""

from __future__ import annotations

import pytest
from test_quantization_cli import write_smooth_images
from test_quantization_qdq import write_micro_model

from vggt_ros.offline import main
from vggt_ros.quantization import cli as quantize_cli
from vggt_ros.runtime.io_contract import ExportManifest

pytestmark = pytest.mark.slow  # quantizing and exporting the micro model takes about a minute


@pytest.fixture(scope="module")
def square_images(tmp_path_factory):
    """Six smooth random 28x28 images: the model input size as they are."""
    return write_smooth_images(tmp_path_factory.mktemp("images"), 6, seed=1)


@pytest.fixture(scope="module")
def int8_engines(tmp_path_factory, square_images):
    """The micro model quantized to INT8 by vggt-ros-quantize for windows of at most 4 frames."""
    out = tmp_path_factory.mktemp("int8")
    micro = write_micro_model(tmp_path_factory.mktemp("micro"))
    arguments = ["--weights", str(micro), "--calibration", str(square_images), "--scheme", "int8", "--out", str(out)]
    options = ["--frames", "2", "--image-size", "28", "--device", "cpu", "--search-steps", "1", "--max-frames", "4"]
    assert quantize_cli.main([*arguments, *options, "--compensation", "off"]) == 0
    assert ExportManifest.load(out).frames.max == 4
    return out


def reconstruct(images, engines, out, *extra):
    arguments = ["--images", str(images), "--out", str(out), "--engine-dir", str(engines)]
    return main([*arguments, "--backend", "onnxruntime", "--precision", "int8", "--image-size", "28", *extra])


def test_the_default_max_frames_over_int8_engines_suggests_the_value_that_fits(
    square_images, int8_engines, tmp_path, capsys
):
    assert reconstruct(square_images, int8_engines, tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert "--max-frames 64 makes forward passes of up to 64 images" in error and "accept 1 to 4 frames" in error
    assert "pass --max-frames 4 (or less)" in error and "Traceback" not in error
    assert not (tmp_path / "out" / "summary.json").exists()

    assert reconstruct(square_images, int8_engines, tmp_path / "out", "--max-frames", "4") == 0  # the advice works
    assert (tmp_path / "out" / "summary.json").is_file()


def test_a_sliding_window_larger_than_the_engines_suggests_a_window_size(square_images, int8_engines, tmp_path, capsys):
    assert reconstruct(square_images, int8_engines, tmp_path / "out", "--sliding-window") == 1  # window size 8
    assert "pass --window-size 4 (or less)" in capsys.readouterr().err
