# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The node's start-up: the pipeline and the session, or one error whose fix fits its cause."""

from __future__ import annotations

from vggt_ros.model.weights import CheckpointError
from vggt_ros.runtime import RuntimeConfig, create_pipeline
from vggt_ros.runtime.io_contract import BackendUnavailableError
from vggt_ros.session import ReconstructionSession, SessionConfig, images_per_call


class StartupError(RuntimeError):
    """The node cannot start; the message says what to change."""


def load_session(runtime: RuntimeConfig, session: SessionConfig, transforms) -> ReconstructionSession:
    """The session over the inference pipeline, or a StartupError that says what to change (with engines, the
    export command that fits: the session's image width and most images per call)."""
    try:
        return ReconstructionSession(create_pipeline(runtime), session, transforms)
    except Exception as err:  # noqa: BLE001 - any loader failure becomes one clear start-up error
        where = f"weights '{runtime.weights}'" if runtime.backend == "torch" else f"engine_dir '{runtime.engine_dir}'"
        raise StartupError(
            f"cannot load the {runtime.backend} pipeline ({where}, device {runtime.device}): {err}\n"
            f"Fix: {_fix(err, runtime, images_per_call(session).most, session.image_size)}."
        ) from None


def _fix(err: Exception, runtime: RuntimeConfig, max_frames: int, image_width: int) -> str:
    """What to change for this failure: the device, the download, the weights value or the engines."""
    if isinstance(err, BackendUnavailableError):
        return "use a backend and device this machine has (see the error above; device auto picks one)"
    if runtime.backend != "torch":
        return (
            f"export the engines first: vggt-ros-build-engines --backend {runtime.backend} --weights <weights> "
            f"--height <model input height> --width {image_width} --max-frames {max_frames} "
            f"--out {runtime.engine_dir} (see docs/engines.md), or point 'engine_dir' at such a folder"
        )
    if isinstance(err, CheckpointError) and "hf download" in str(err):  # the hub id is right, the hub out of reach
        return (
            "run the hf download command above where there is network and set 'weights' to the downloaded folder, "
            "or give this machine access to the Hugging Face hub"
        )
    return (
        "set 'weights' to a Hugging Face id (facebook/VGGT-1B), a folder with config.json and the weights, "
        "or a weights file (plus 'model_config' for a non-default model)"
    )
