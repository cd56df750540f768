# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX Runtime execution of an exported stage set (CPU here; any ORT execution provider elsewhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..model.stages import StageRunner
from .io_contract import (
    FRAMES,
    MANIFEST_FILE,
    REEXPORT,
    BackendUnavailableError,
    ComponentSpec,
    ExportManifest,
    ManifestError,
    TensorContractError,
    TensorSpec,
    check_inputs,
)

# ONNX Runtime's names of the manifest's dtypes.
_ORT_TYPES = {
    "tensor(float)": "float32",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int64)": "int64",
    "tensor(int32)": "int32",
    "tensor(bool)": "bool",
}


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
            "or use the 'torch' backend"
        ) from e
    # Every graph against the manifest's SHA-256 (seconds for VGGT-1B's gigabytes, beside ORT's own load): a graph
    # of another export of the same size, or one bit-flipped on disk, runs without a word otherwise; and a missing or
    # truncated graph is named here, not by ORT's parser.
    manifest.check_files(export_dir, contents=True)
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    if manifest.quantization is not None:
        # Run the graph's QuantizeLinear / DequantizeLinear as written: ORT's fused integer MatMul saturates on CPUs
        # without VNNI (measured: about 10 % error on DINOv2's output on an AVX2 machine, 1e-6 without the fusion).
        options.add_session_config_entry("session.disable_quant_qdq", "1")
    sessions = {
        name: _session(ort, export_dir / spec.file, spec, options, providers)
        for name, spec in manifest.components.items()
    }

    def run(name: str, inputs) -> dict[str, torch.Tensor]:
        spec = manifest.components[name]
        checked, frames = check_inputs(spec, {k: v.detach().cpu() for k, v in inputs.items()}, manifest.frames)
        feeds = {k: np.ascontiguousarray(v.numpy()) for k, v in checked.items()}
        results = sessions[name].run([o.name for o in spec.outputs], feeds)
        for output, result in zip(spec.outputs, results):
            _check_output_shape(export_dir / spec.file, output, result.shape, frames)
        return {o.name: torch.from_numpy(r) for o, r in zip(spec.outputs, results)}

    return run


def _session(ort, path: Path, spec: ComponentSpec, options, providers: Sequence[str]):
    """An ORT session of one graph, whose inputs and outputs must be those the manifest lists for it."""
    try:
        session = ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as err:  # ORT's errors (InvalidProtobuf, NoSuchFile, Fail ...) share no base class but Exception
        raise ManifestError(
            f"ONNX Runtime cannot load {path} ({err}); if the export was damaged, edited or interrupted, {REEXPORT}"
        ) from None
    problems = [
        *_io_problems("input", spec.inputs, session.get_inputs()),
        *_io_problems("output", spec.outputs, session.get_outputs()),
    ]
    if problems:
        raise ManifestError(f"{path} does not match {MANIFEST_FILE}: {'; '.join(problems)}; {REEXPORT}")
    return session


def _io_problems(kind: str, specs: Sequence[TensorSpec], graph_tensors: Sequence[Any]) -> list[str]:
    """How a graph's inputs or outputs (ORT's NodeArgs) differ from the manifest's: names, dtypes, static dims."""
    graph = {tensor.name: tensor for tensor in graph_tensors}
    problems = [f"the graph has no {kind} '{spec.name}'" for spec in specs if spec.name not in graph]
    listed = {spec.name for spec in specs}
    problems += [f"its {kind} '{name}' is not in the manifest" for name in graph if name not in listed]
    for spec in (spec for spec in specs if spec.name in graph):
        tensor = graph[spec.name]
        dtype = _ORT_TYPES.get(tensor.type, tensor.type)
        if dtype != spec.dtype:
            problems.append(f"{kind} '{spec.name}' is {dtype} in the graph, {spec.dtype} in the manifest")
        if len(tensor.shape) != len(spec.shape) or not all(map(_dims_agree, tensor.shape, spec.shape)):
            problems.append(
                f"{kind} '{spec.name}' has shape {tensor.shape} in the graph, {list(spec.shape)} in the manifest"
            )
    return problems


def _dims_agree(graph_dim: Any, manifest_dim: int | str) -> bool:
    """A static graph dim must be the manifest's; the graph's frame axis is named S. Other symbolic dims (ONNX's
    shape inference leaves some outputs' dims unnamed or computed) are only known when the graph runs."""
    if isinstance(graph_dim, int):
        return graph_dim == manifest_dim
    return graph_dim != FRAMES or manifest_dim == FRAMES


def _check_output_shape(path: Path, spec: TensorSpec, shape: tuple[int, ...], frames: int) -> None:
    if tuple(shape) != spec.concrete_shape(frames):
        raise TensorContractError(
            f"{path} output '{spec.name}' has shape {tuple(shape)}, {MANIFEST_FILE} says "
            f"{spec.concrete_shape(frames)} (= {spec.shape} with S={frames}); {REEXPORT}"
        )
