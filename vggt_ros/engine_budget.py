# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Whether the offline command's windows fit the frame range of the engines it runs, with the option that fixes it.

Exported engines (ONNX Runtime, TensorRT; float or INT8 / FP8 from `vggt-ros-quantize`) accept a fixed range of
frames per call, 8 at most unless exported with a larger ``--max-frames``. `vggt-ros-reconstruct` sizes its windows
from its own ``--max-frames`` (64 by default) or, with ``--sliding-window``, ``--window-size``. The session refuses
windows larger than the engines (`vggt_ros.session.check_engines_fit`) in terms of its configuration; this check
runs first and names the command-line option and the value that fits.
"""

from __future__ import annotations

import argparse

from vggt_ros.runtime import Pipeline


def check_windows_fit_engines(args: argparse.Namespace, cameras: int, window_size: int, pipeline: Pipeline) -> None:
    """Raise ValueError when windows of ``window_size`` frame sets of ``cameras`` images exceed ``pipeline``'s frame
    range, naming the option to lower (``--window-size`` with ``--sliding-window``, else ``--max-frames``), the
    value that fits, and the export that would take the larger windows."""
    frames = pipeline.frames
    images = window_size * cameras
    if frames is None or images <= frames.max:  # the torch backend takes any count
        return
    if args.sliding_window:
        option, value, fits = "--window-size", args.window_size, frames.max // cameras
        cause = f"--window-size {value} with {cameras} camera(s) makes windows of {images} images"
    else:
        option, value, fits = "--max-frames", args.max_frames, frames.max // cameras * cameras
        cause = f"--max-frames {value} makes forward passes of up to {images} images"
    raise ValueError(
        f"{cause}, but the {pipeline.backend} engines in {args.engine_dir} accept {frames.min} to {frames.max} "
        f"frames; pass {option} {fits} (or less), or export the engines again with --max-frames {images}"
    )
