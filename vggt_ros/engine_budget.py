# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Whether the offline command's forward passes fit the frame range of the engines it runs.

Exported engines (ONNX Runtime, TensorRT; float or INT8 / FP8 from `vggt-ros-quantize`) accept a fixed range of
frames per pass, 8 at most unless exported with a larger ``--max-frames``. `vggt-ros-reconstruct` plans passes of up
to its own ``--max-frames`` (64 by default) images, so with engines a run would fail at its first window. This is
checked once the engines are loaded, before any image is read, with the value that fits.
"""

from __future__ import annotations

import argparse

from vggt_ros.runtime import Pipeline


def check_pass_fits_engines(args: argparse.Namespace, cameras: int, frame_sets: int, pipeline: Pipeline) -> None:
    """Raise ValueError when a pass of ``frame_sets`` frame sets of ``cameras`` images exceeds ``pipeline``'s frame
    range, naming the option to lower (``--window-size`` with ``--sliding-window``, else ``--max-frames``), the value
    that fits, and the re-export that would take the larger pass."""
    frames = pipeline.frames
    images = frame_sets * cameras
    if frames is None or images <= frames.max:  # the torch backend takes any count
        return
    if args.sliding_window:
        option, fits = "--window-size", frames.max // cameras
    else:
        option, fits = "--max-frames", frames.max // cameras * cameras
    raise ValueError(
        f"a forward pass would take {images} images, but the {pipeline.backend} engines in {args.engine_dir} accept "
        f"{frames.min} to {frames.max}; pass {option} {fits} (or less), or export the engines again with "
        f"--max-frames {images}"
    )
