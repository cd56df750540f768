# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""VGGT from its weights, for the torch backend and the export and quantization tools: `VGGT.from_pretrained`, with
an export given in the weights' place named, and what runs it.

Engine exports (``manifest.json`` and ONNX graphs) and vggt-ros-quantize exports (``plan.json``; for W4A16 a
safetensors file of VGGT keys) are folders as weights are. Read as weights they fail on the keys or on "no weight
files", which says nothing of what they are; their formats are defined above the model, so its loader cannot tell.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path
from typing import Optional

import torch

from ..model import VGGT
from ..model.config import VGGTConfig
from ..model.weights import CheckpointError
from ..quantized_formats.plan import quantized_scheme_in
from ..quantized_formats.schemes import W4A16
from .io_contract import MANIFEST_FILE


def load_model(
    weights: str | PathLike, config: VGGTConfig | str | PathLike | None = None, device: str | torch.device = "cpu"
) -> VGGT:
    """`VGGT.from_pretrained`; where that fails on an export, the CheckpointError says which and what runs it."""
    try:
        return VGGT.from_pretrained(weights, config=config, device=device)
    except CheckpointError:
        export = _export_at(Path(weights).expanduser())
        if export is None:
            raise
        raise CheckpointError(export) from None  # why it failed to read as weights says nothing more


def _export_at(path: Path) -> Optional[str]:
    """What to say when ``path`` (a folder, or a file in one) is an export, else None."""
    folder = path.parent if path.is_file() else path
    scheme = quantized_scheme_in(folder) or (_scheme_of_file(path) if path.is_file() else None)
    if scheme is None and not (folder / MANIFEST_FILE).is_file():
        return None
    what = f"a vggt-ros-quantize {scheme} export" if scheme else "an engine export (vggt-ros-build-engines)"
    if scheme == W4A16:
        run = "precision w4a16 on the torch backend"
    else:
        run = "backend onnxruntime or tensorrt" + (f", precision {scheme}" if scheme else "")
    return (
        f"{path} is {what}, not VGGT weights: run it with {run} and its folder as the engine folder (the node's "
        "engine_dir, the offline command's --engine-dir), and give the weights it came from as the weights"
    )


def _scheme_of_file(path: Path) -> Optional[str]:
    """The scheme a safetensors file's metadata names (a vggt-ros-quantize W4A16 file away from its plan), or None."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as stream:
            return (stream.metadata() or {}).get("scheme")
    except Exception:  # not a safetensors file, or unreadable: no export either
        return None
