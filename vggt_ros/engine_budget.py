# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Whether the offline command's network calls fit the engines it runs, with the option that fixes it.

Exported engines (ONNX Runtime, TensorRT; float or INT8 / FP8 from `vggt-ros-quantize`) accept a fixed range of
frames per call, 8 at most unless exported with a larger ``--max-frames``. `vggt-ros-reconstruct` sizes its windows
from its own ``--max-frames`` (64 by default) or, with ``--sliding-window``, ``--window-size``, and with loop
closure runs passes of 1 to 4 images. The session refuses calls the engines cannot run
(`vggt_ros.session.check_engines_fit`) in terms of its configuration, and checks only the width in crop mode; this
check runs first, knows the inputs' model image size, and names the command-line option and the value that fits.
"""

from __future__ import annotations

import argparse
from typing import Optional

from vggt_ros.runtime import Pipeline
from vggt_ros.session import SessionConfig, images_per_call
from vggt_ros.world.loop_verification import LOOP_WINDOW_MAX_FRAMES


def check_run_fits_engines(
    args: argparse.Namespace, config: SessionConfig, model_hw: Optional[tuple[int, int]], pipeline: Pipeline
) -> None:
    """Raise ValueError when the run's network calls do not fit ``pipeline``'s engines, before any image is read:

    - the model image size of the inputs (``model_hw``; None when unknown) against the engines';
    - the session's windows against the frame range, naming the option to lower (``--window-size`` with
      ``--sliding-window``, else ``--max-frames``) and a value that fits, where one does (a window holds 2 frame
      sets at least), and the export that would take the larger windows;
    - each new frame set, which runs through DINOv2 on its own, and with loop closure its passes
      (`vggt_ros.session.images_per_call`).
    """
    frames = pipeline.frames
    if frames is None:  # the torch backend takes any count and size
        return
    engines = f"the {pipeline.backend} engines in {args.engine_dir}"
    if pipeline.image_hw is not None and model_hw is not None and tuple(pipeline.image_hw) != tuple(model_hw):
        (height, width), (engine_height, engine_width) = model_hw, pipeline.image_hw
        raise ValueError(
            f"the inputs make {height}x{width} model images (--mode {args.mode}, --image-size {args.image_size}), but "
            f"{engines} were exported for {engine_height}x{engine_width}; export them again with --height {height} "
            f"--width {width}"
        )
    cameras = config.cameras
    images = config.window.window_size * cameras
    if images > frames.max:
        if args.sliding_window:
            option, value, fits = "--window-size", args.window_size, frames.max // cameras
            cause = f"--window-size {value} with {cameras} camera(s) makes windows of {images} images"
        else:
            option, value, fits = "--max-frames", args.max_frames, frames.max // cameras * cameras
            cause = f"--max-frames {value} makes forward passes of up to {images} images"
        smaller = f"pass {option} {fits} (or less), or " if frames.max // cameras >= 2 else ""
        raise ValueError(
            f"{cause}, but {engines} accept {frames.min} to {frames.max} frames; {smaller}export the engines again "
            f"with --max-frames {images}"
        )
    calls = images_per_call(config)  # beyond the windows, which fit: each new frame set, and the loop passes
    if not config.world.loop.enabled and frames.min > calls.fewest:
        raise ValueError(
            f"each new frame set of {cameras} image(s) runs through DINOv2 on its own, but {engines} accept "
            f"{frames.min} to {frames.max} frames; export the engines again with --min-frames {cameras}"
        )
    if config.world.loop.enabled and (frames.min > calls.fewest or frames.max < calls.most):
        raise ValueError(
            f"loop closure runs passes of {calls.fewest} to {LOOP_WINDOW_MAX_FRAMES} images, but {engines} accept "
            f"{frames.min} to {frames.max} frames; pass --no-loop-closure, or export the engines again with "
            f"--min-frames {calls.fewest} --max-frames {max(frames.max, calls.most)}"
        )
