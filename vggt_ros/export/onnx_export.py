# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Export the five VGGT stages to ONNX graphs with a dynamic frame count S and a manifest.

The TorchScript-based exporter is used (`dynamo=False`): the stages are static graphs apart from S, it exports
them in seconds where the torch.export route takes minutes on CPU, and it keeps S symbolic through the
frame/global reshapes. Graphs larger than protobuf's 2 GB limit are stored with ONNX external data.

An export is written whole or not at all (`vggt_ros.files.staged_entries`): the graphs and the manifest are written
into a staging folder inside the output folder, so an earlier export there stays intact until the new one is
complete; then they are swapped in, the earlier manifest out first and the new one in last (its keystone). An export
interrupted or failed before its swap leaves the earlier export as it was; a Ctrl-C or SIGTERM during the swap (a few
renames) waits for its end, a failed swap is undone, and a killed export (SIGKILL, power loss) during the swap leaves
a folder without a manifest, which every tool refuses. Only the entries an earlier
export recorded writing (`EXPORT_ENTRIES`, listed in ``.vggt-saved``) are replaced or removed: a file of the user's
of such a name is refused, and other files are never touched. The manifest records the size and SHA-256 of every
file and the model config, so a graph changed afterwards, or the same weights under another config, is not taken for
this export. A killed export can leave its staging folder, ``.vggt-save-*``, which the next export removes.

A quantized export (`vggt_ros.quantization.qdq.QDQExport`) is the same export of the floating-point model, with
quantize/dequantize nodes written into the graphs of the stages it quantizes before they are saved, and its
``quantization`` section (scheme, plan, digests) in the manifest.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Protocol

import torch

from ..files import replace_atomically, staged_entries
from ..model import VGGT
from ..model.config import VGGTConfig
from ..model.stages import STAGE_NAMES, build_stages, stage_io
from ..runtime.io_contract import (
    MANIFEST_FILE,
    ComponentSpec,
    ExportManifest,
    FileRecord,
    FramesProfile,
    TensorSpec,
)

log = logging.getLogger(__name__)

PROTOBUF_LIMIT_BYTES = 2 * 1024**3
# Every stage tensor has the frame axis first, except the stacked camera iterations (iterations, S, 9).
_FRAME_AXIS = {"pose_enc_list": 1}


def _graph_file(stage: str) -> str:
    return f"{stage}.onnx"


def _data_file(graph: str) -> str:
    return f"{graph}.data"


# Every entry an export writes into its folder: the manifest, each stage's graph and, for a graph over protobuf's
# limit, its external data file.
EXPORT_ENTRIES = (
    MANIFEST_FILE,
    *(_graph_file(stage) for stage in STAGE_NAMES),
    *(_data_file(_graph_file(stage)) for stage in STAGE_NAMES),
)


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


def model_config_record(config: VGGTConfig) -> dict[str, Any]:
    """The config as manifest.json records it and reads back (tuples become lists)."""
    return json.loads(json.dumps(config.to_dict()))


def package_version() -> str:
    """vggt_ros's version (the graphs are its stages'); "unknown" in a source tree that was never installed."""
    try:
        return importlib.metadata.version("vggt_ros")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _tensor_spec(name: str, tensor: torch.Tensor) -> TensorSpec:
    shape: list[int | str] = list(tensor.shape)
    shape[_FRAME_AXIS.get(name, 0)] = "S"
    return TensorSpec(name, tuple(shape), str(tensor.dtype).removeprefix("torch."))


# The lowest ONNX opset the graphs export at: scaled_dot_product_attention is in ONNX from opset 14.
MIN_OPSET = 14
# The newest opset torch's exporter writes (it refuses a newer one only after tracing the model); torch keeps it in a
# private module, its one source.
MAX_OPSET = torch.onnx._constants.ONNX_MAX_OPSET


def check_opset(opset: int) -> None:
    """Raise ValueError for an opset the graphs cannot be exported at (before a model loads: the exporter would
    find out after it)."""
    if opset < MIN_OPSET:
        raise ValueError(
            f"ONNX opset {opset} is below {MIN_OPSET}, the lowest the graphs export at (scaled_dot_product_attention); "
            f"export with --opset {MIN_OPSET} or more"
        )
    if opset > MAX_OPSET:
        raise ValueError(
            f"ONNX opset {opset} is above {MAX_OPSET}, the newest this torch exports; export with --opset {MAX_OPSET} "
            "or less"
        )


def export_onnx(
    model: VGGT,
    out_dir: str | Path,
    image_hw: tuple[int, int],
    frames: FramesProfile = FramesProfile(1, 4, 8),
    opset: int = 18,
    external_data_threshold: int = PROTOBUF_LIMIT_BYTES,
    quantization: GraphQuantization | None = None,
) -> ExportManifest:
    """Write `<stage>.onnx` for the five stages and `manifest.json` into out_dir, whole or not at all (see the module
    docstring); return the manifest. The arguments are `write_onnx_export`'s."""
    with staged_entries(out_dir, EXPORT_ENTRIES, keystone=MANIFEST_FILE) as staging:
        return write_onnx_export(model, staging, image_hw, frames, opset, external_data_threshold, quantization)


def write_onnx_export(
    model: VGGT,
    folder: Path,
    image_hw: tuple[int, int],
    frames: FramesProfile,
    opset: int = 18,
    external_data_threshold: int = PROTOBUF_LIMIT_BYTES,
    quantization: GraphQuantization | None = None,
) -> ExportManifest:
    """Write the export's `EXPORT_ENTRIES` into ``folder``, a save's staging folder (`export_onnx`'s, or one that
    holds more, as vggt-ros-quantize's); return the manifest.

    `external_data_threshold`: graphs whose weights exceed this many bytes keep them in `<stage>.onnx.data`.
    `quantization`: Q/DQ nodes to write into the graphs of the stages it quantizes (needs opset >= its min_opset).
    """
    import onnx

    check_opset(opset)
    if quantization is not None and opset < quantization.min_opset:
        raise ValueError(
            f"{quantization.scheme} quantize/dequantize nodes need ONNX opset >= {quantization.min_opset}, "
            f"got {opset}; export with --opset {quantization.min_opset}"
        )

    height, width = int(image_hw[0]), int(image_hw[1])
    patch = model.config.patch_size
    if height % patch or width % patch:
        raise ValueError(f"export size {height}x{width} must be a multiple of the patch size {patch}")
    folder = Path(folder)
    model = model.float().eval()
    components = _export_stages(model, (height, width), folder, opset, external_data_threshold, quantization)
    manifest = ExportManifest(
        height=height,
        width=width,
        frames=frames,
        weights_sha256=state_dict_sha256(model),
        opset=opset,
        exporter={
            "torch": torch.__version__,
            "onnx": onnx.__version__,
            "mode": "torchscript",
            "vggt_ros": package_version(),
        },
        components=components,
        quantization=None if quantization is None else quantization.manifest_entry(),
        model_config=model_config_record(model.config),
        files={name: FileRecord.of(folder / name) for name in _written_files(folder, components)},
    )
    text = json.dumps(manifest.to_manifest(), indent=1)
    replace_atomically(folder / MANIFEST_FILE, lambda path: path.write_text(text))
    return manifest


def _export_stages(
    model: VGGT,
    image_hw: tuple[int, int],
    folder: Path,
    opset: int,
    external_data_threshold: int,
    quantization: GraphQuantization | None,
) -> dict[str, ComponentSpec]:
    """Export the five stages into ``folder``; return their specs."""
    import onnx

    stages = build_stages(model, image_hw).eval()
    io = stage_io(model.config.tapped_layers)
    device = next(model.parameters()).device
    # Trace with two frames: with one, the tracer could fold S = 1 into the graph.
    values = {"images": torch.rand(2, 3, *image_hw, device=device)}
    components = {}
    with torch.no_grad():
        for name in STAGE_NAMES:
            in_names, out_names = io[name]
            args = tuple(values[k] for k in in_names)
            outputs = stages[name](*args)
            outputs = (outputs,) if isinstance(outputs, torch.Tensor) else outputs
            values.update(zip(out_names, outputs))
            start = time.perf_counter()
            path = folder / _graph_file(name)
            rewrite = None if quantization is None else (lambda graph, stage=name: quantization.rewrite(stage, graph))
            try:
                _export_stage(stages[name], args, in_names, out_names, path, opset, external_data_threshold, rewrite)
            except OSError as err:  # a full disk: torch and onnx name no file
                raise OSError(f"could not write {path}: {err.strerror or err}") from None
            onnx.checker.check_model(str(path))
            log.info("exported %s in %.1f s (%s)", path.name, time.perf_counter() - start, _size_text(path))
            components[name] = ComponentSpec(
                name,
                path.name,
                tuple(_tensor_spec(k, values[k]) for k in in_names),
                tuple(_tensor_spec(k, values[k]) for k in out_names),
            )
    return components


def _written_files(folder: Path, components: dict[str, ComponentSpec]) -> list[str]:
    """Each graph's file name and, where it has one, its external data file's."""
    names = [c.file for c in components.values()]
    return [*names, *(_data_file(name) for name in names if (folder / _data_file(name)).is_file())]


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
        data_path = path.with_name(_data_file(path.name))
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
    data = path.with_name(_data_file(path.name))
    total = path.stat().st_size + (data.stat().st_size if data.exists() else 0)
    return f"{total / 1e6:.1f} MB" + (" with external data" if data.exists() else "")
