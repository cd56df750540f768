# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX Runtime execution of an exported stage set (CPU here; any ORT execution provider elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from ..model.stages import StageRunner
from .io_contract import BackendUnavailableError, ExportManifest, check_inputs


def onnxruntime_stage_runner(
    export_dir: Path,
    manifest: ExportManifest,
    providers: Sequence[str] = ("CPUExecutionProvider",),
    threads: int | None = None,
) -> StageRunner:
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise BackendUnavailableError(
            f"the onnxruntime backend needs the 'onnxruntime' package ({e}); pip install onnxruntime, "
            "or use backend='torch'"
        ) from e
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if manifest.quantization is not None:
        # Run the graph's QuantizeLinear / DequantizeLinear as written: ORT's fused integer MatMul saturates on CPUs
        # without VNNI (measured: about 10 % error on DINOv2's output on an AVX2 machine, 1e-6 without the fusion).
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    sessions = {
        name: ort.InferenceSession(str(export_dir / spec.file), options, providers=list(providers))
        for name, spec in manifest.components.items()
    }

    def run(name: str, inputs) -> dict[str, torch.Tensor]:
        spec = manifest.components[name]
        checked, _ = check_inputs(spec, {k: v.detach().cpu() for k, v in inputs.items()}, manifest.frames)
        feeds = {k: np.ascontiguousarray(v.numpy()) for k, v in checked.items()}
        results = sessions[name].run([o.name for o in spec.outputs], feeds)
        return {o.name: torch.from_numpy(r) for o, r in zip(spec.outputs, results)}

    return run
