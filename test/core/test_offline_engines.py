# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-reconstruct` on exported engines: windows larger than their frame range, loop passes they cannot run
and inputs of another model image size are refused before any image is read, with the option that fits."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from PIL import Image
from test_quantization_cli import write_smooth_images
from test_quantization_qdq import write_micro_model

from vggt_ros.engine_budget import check_run_fits_engines
from vggt_ros.offline import main
from vggt_ros.quantization import cli as quantize_cli
from vggt_ros.runtime import RuntimeConfig
from vggt_ros.runtime.io_contract import ExportManifest, FramesProfile
from vggt_ros.session import SessionConfig
from vggt_ros.window import WindowConfig
from vggt_ros.world import WorldConfig
from vggt_ros.world.loop_config import LoopConfig

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
    assert "--max-frames 64 makes forward passes of up to 6 images" in error and "accept 1 to 4 frames" in error
    assert "pass --max-frames 4 (or less)" in error and "Traceback" not in error
    assert not (tmp_path / "out" / "summary.json").exists()

    assert reconstruct(square_images, int8_engines, tmp_path / "out", "--max-frames", "4") == 0  # the advice works
    assert (tmp_path / "out" / "summary.json").is_file()


def test_precision_auto_runs_a_quantized_export_at_its_scheme(square_images, int8_engines, tmp_path, caplog):
    """The default precision (auto) refused an INT8 export: "holds an export quantized for int8; set precision to
    'int8'". Auto means the export as it is."""
    resolved = RuntimeConfig(backend="onnxruntime", engine_dir=str(int8_engines)).resolve(cuda_available=False)
    assert resolved.config.precision == "int8"
    assert f"precision auto -> int8 (engine_dir {int8_engines} holds an export quantized for it)" in resolved.chosen
    float_export = RuntimeConfig(backend="onnxruntime", engine_dir=str(tmp_path / "none")).resolve(cuda_available=False)
    assert float_export.config.precision == "fp32"  # no export there: creating the pipeline says why
    arguments = ["--images", str(square_images), "--out", str(tmp_path / "out"), "--engine-dir", str(int8_engines)]
    main([*arguments, "--backend", "onnxruntime", "--image-size", "28", "--max-frames", "4"])
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["runtime"]["precision"] == "int8" and summary["windows"] >= 1


def test_a_sliding_window_larger_than_the_engines_suggests_a_window_size(square_images, int8_engines, tmp_path, capsys):
    assert reconstruct(square_images, int8_engines, tmp_path / "out", "--sliding-window") == 1  # window size 8
    assert "pass --window-size 4 (or less)" in capsys.readouterr().err


def test_a_folder_that_fits_the_engines_runs_in_one_pass_at_the_default_max_frames(int8_engines, tmp_path):
    """Joint mode sized its one window by --max-frames (64), so 3 images were refused on engines of 4 frames."""
    few = tmp_path / "few"
    few.mkdir()
    write_smooth_images(few, 3, seed=2)
    reconstruct(few, int8_engines, tmp_path / "out")  # the micro model's cameras are unusable: nothing merges
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert (summary["mode"], summary["windows"], summary["failed_windows"]) == ("joint", 1, 0)
    assert summary["per_window"][0]["images"] == 3  # the engines ran the one window
    # What ran the network is recorded: the outputs of an INT8 export are a few percent off float32's, and the
    # summary of such a run had the very keys and values of a torch run's.
    assert summary["runtime"] == {
        "backend": "onnxruntime",
        "device": "cpu",
        "precision": "int8",
        "engine_dir": str(int8_engines),
    }


def test_inputs_of_another_model_image_size_are_refused_before_any_image_is_read(int8_engines, tmp_path, capsys):
    """In crop mode the start-up check compared the widths only: 56 x 28 images make 14 x 28 model images, the
    engines take 28 x 28, and every window then failed."""
    wide = tmp_path / "wide"
    wide.mkdir()
    for index in range(3):
        Image.fromarray(np.full((14, 28, 3), 60 * index, dtype=np.uint8)).resize((56, 28)).save(wide / f"{index}.png")
    assert reconstruct(wide, int8_engines, tmp_path / "out") == 1
    error = capsys.readouterr().err
    assert "the inputs make 14x28 model images (--mode crop, --image-size 28), but the onnxruntime engines in " in error
    assert "were exported for 28x28; export them again with --height 14 --width 28" in error
    assert not (tmp_path / "out" / "summary.json").exists()


class EngineLimitsStandIn:
    """Test double: only what `check_run_fits_engines` reads of an engine pipeline."""

    backend, image_hw = "onnxruntime", (28, 28)

    def __init__(self, frames: FramesProfile) -> None:
        self.frames = frames


def _arguments(**given) -> argparse.Namespace:
    values = dict(
        sliding_window=False,
        window_size=8,
        max_frames=64,
        loop_closure=False,
        engine_dir="e",
        mode="crop",
        image_size=28,
    )
    return argparse.Namespace(**{**values, **given})


@pytest.mark.parametrize(
    "given, cameras, window_size, frames, message",
    [
        # Two cameras on engines of 3 frames: no window of 2 frame sets fits ("pass --max-frames 2" was refused).
        ({}, 2, 32, FramesProfile(1, 2, 3), "engines in e accept 1 to 3 frames; export the engines again with"),
        ({"sliding_window": True}, 2, 8, FramesProfile(1, 2, 3), "accept 1 to 3 frames; export the engines again"),
        # Loop passes of up to 4 images on engines of 3 ("pass --max-frames 3", then the session refused it).
        (
            {"loop_closure": True, "max_frames": 3},
            1,
            3,
            FramesProfile(1, 2, 3),
            "loop closure runs passes of 1 to 4 images, but the onnxruntime engines in e accept 1 to 3 frames; pass "
            "--no-loop-closure, or export the engines again with --min-frames 1 --max-frames 4",
        ),
        # Engines of 2 to 4 frames, one camera: "pass --max-frames 4" was followed by the session's refusal of its
        # one-frame DINOv2 calls, which named no fix.
        (
            {"max_frames": 4},
            1,
            4,
            FramesProfile(2, 2, 4),
            "each new frame set of 1 image(s) runs through DINOv2 on its own, but the onnxruntime engines in e accept "
            "2 to 4 frames; export the engines again with --min-frames 1",
        ),
    ],
)
def test_the_fix_for_engines_too_small_is_one_the_next_check_takes(given, cameras, window_size, frames, message):
    with pytest.raises(ValueError) as err:
        arguments = _arguments(**given)
        session = SessionConfig(
            window=WindowConfig(window_size, 1),
            cameras=cameras,
            world=WorldConfig(retained_frames=window_size * cameras, loop=LoopConfig(enabled=arguments.loop_closure)),
        )
        check_run_fits_engines(arguments, session, (28, 28), EngineLimitsStandIn(frames))
    assert message in str(err.value) and "(or less)" not in str(err.value)
