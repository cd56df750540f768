# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Export the five VGGT stages to ONNX graphs with a dynamic frame count S and a manifest.

The TorchScript-based exporter is used (`dynamo=False`): the stages are static graphs apart from S, it exports
them in seconds where the torch.export route takes minutes on CPU, and it keeps S symbolic through the
frame/global reshapes. Graphs larger than protobuf's 2 GB limit are stored with ONNX external data.

A quantized export (`vggt_ros.quantization.qdq.QDQExport`) is the same export of the floating-point model, with
quantize/dequantize nodes written into the graphs of the stages it quantizes before they are saved, and its
``quantization`` section (scheme, plan, digests) in the manifest.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import torch

from ..model import VGGT
from ..model.stages import STAGE_NAMES, build_stages, stage_io
from ..runtime.io_contract import MANIFEST_FILE, ComponentSpec, ExportManifest, FramesProfile, TensorSpec

log = logging.getLogger(__name__)

PROTOBUF_LIMIT_BYTES = 2 * 1024**3
# Every stage tensor has the frame axis first, except the stacked camera iterations (iterations, S, 9).
_FRAME_AXIS = {"pose_enc_list": 1}


class GraphQuantization(Protocol):
    """What the export needs of a quantized export (`vggt_ros.quantization.qdq.QDQExport`); declared here so that this
    package does not import the quantization recipe above it."""

    @property
    def scheme(self) -> str: ...

    @property
    def min_opset(self) -> int: ...

    def rewrite(self, stage: str, graph: Any) -> Any:
        """Insert the quantize/dequantize nodes of ``stage`` into its ONNX model (in place; returned)."""
        ...

    def manifest_entry(self) -> dict[str, Any]:
        """The ``quantization`` section of manifest.json."""
        ...


def state_dict_sha256(model: torch.nn.Module) -> str:
    """Hash of every parameter's name, dtype, shape and bytes: identifies the weights whatever the file format."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.view(torch.uint8).numpy().data if t.numel() else b"")
    return digest.hexdigest()


def _tensor_spec(name: str, tensor: torch.Tensor) -> TensorSpec:
    shape: list[int | str] = list(tensor.shape)
    shape[_FRAME_AXIS.get(name, 0)] = "S"
    return TensorSpec(name, tuple(shape), str(tensor.dtype).removeprefix("torch."))


def export_onnx(
    model: VGGT,
    out_dir: str | Path,
    image_hw: tuple[int, int],
    frames: FramesProfile = FramesProfile(1, 4, 8),
    opset: int = 18,
    external_data_threshold: int = PROTOBUF_LIMIT_BYTES,
    quantization: GraphQuantization | None = None,
) -> ExportManifest:
    """Write `<stage>.onnx` for the five stages and `manifest.json` into out_dir; return the manifest.

    `external_data_threshold`: graphs whose weights exceed this many bytes keep them in `<stage>.onnx.data`.
    `quantization`: Q/DQ nodes to write into the graphs of the stages it quantizes (needs opset >= its min_opset).
    """
    import onnx

    if quantization is not None and opset < quantization.min_opset:
        raise ValueError(
            f"{quantization.scheme} quantize/dequantize nodes need ONNX opset >= {quantization.min_opset}, "
            f"got {opset}; export with --opset {quantization.min_opset}"
        )

    height, width = int(image_hw[0]), int(image_hw[1])
    patch = model.config.patch_size
    if height % patch or width % patch:
        raise ValueError(f"export size {height}x{width} must be a multiple of the patch size {patch}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    stages = build_stages(model, (height, width)).eval()
    io = stage_io(model.config.tapped_layers)
    device = next(model.parameters()).device
    # Trace with two frames: with one, the tracer could fold S = 1 into the graph.
    values = {"images": torch.rand(2, 3, height, width, device=device)}
    components = {}
    with torch.no_grad():
        for name in STAGE_NAMES:
            in_names, out_names = io[name]
            args = tuple(values[k] for k in in_names)
            outputs = stages[name](*args)
            outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
            values.update(zip(out_names, outputs))
            start = time.perf_counter()
            path = out_dir / f"{name}.onnx"
            rewrite = None if quantization is None else (lambda graph, stage=name: quantization.rewrite(stage, graph))
            _export_stage(stages[name], args, in_names, out_names, path, opset, external_data_threshold, rewrite)
            onnx.checker.check_model(str(path))
            log.info("exported %s in %.1f s (%s)", path.name, time.perf_counter() - start, _size_text(path))
            components[name] = ComponentSpec(
                name,
                path.name,
                tuple(_tensor_spec(k, values[k]) for k in in_names),
                tuple(_tensor_spec(k, values[k]) for k in out_names),
            )
    manifest = ExportManifest(
        height=height,
        width=width,
        frames=frames,
        weights_sha256=state_dict_sha256(model),
        opset=opset,
        exporter={"torch": torch.__version__, "onnx": onnx.__version__, "mode": "torchscript"},
        components=components,
        quantization=None if quantization is None else quantization.manifest_entry(),
    )
    (out_dir / MANIFEST_FILE).write_text(json.dumps(manifest.to_manifest(), indent=1))
    return manifest


def _export_stage(
    module, args, in_names, out_names, path: Path, opset: int, external_data_threshold: int, rewrite=None
) -> None:
    """Export one stage; ``rewrite(onnx model) -> onnx model``, if given, edits the graph before it is saved."""
    import onnx

    dynamic_axes = {k: {_FRAME_AXIS.get(k, 0): "S"} for k in (*in_names, *out_names)}
    weight_bytes = sum(p.numel() * p.element_size() for p in module.parameters())
    with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
        # The exporter may scatter one file per tensor for large graphs; re-save them as one data file.
        tmp_path = Path(tmp) / path.name
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # deprecation notice of the TorchScript exporter, tracer warnings
            torch.onnx.export(
                module,
                args,
                str(tmp_path),
                input_names=list(in_names),
                output_names=list(out_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                dynamo=False,
                do_constant_folding=True,
            )
        graph = onnx.load(str(tmp_path), load_external_data=True)
        if rewrite is not None:
            graph = rewrite(graph)
        data_path = path.with_name(path.name + ".data")
        data_path.unlink(missing_ok=True)
        if weight_bytes > external_data_threshold:
            onnx.save_model(
                graph,
                str(path),
                save_as_external_data=True,
                all_tensors_to_one_file=True,
                location=data_path.name,
                size_threshold=1024,
            )
        else:
            onnx.save_model(graph, str(path))


def _size_text(path: Path) -> str:
    data = path.with_name(path.name + ".data")
    total = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    return f"{total / 1e6:.1f} MB" + (" with external data" if data.exists() else "")
