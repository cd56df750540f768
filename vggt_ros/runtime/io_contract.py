# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The tensor contract between the pipeline and the five exported engines, read from the exporter's manifest.json.

The exporter writes one ONNX graph per component plus ``manifest.json``::

    {"format": 1, "height": H, "width": W, "frames": {"min": 1, "opt": 4, "max": N},
     "weights_sha256": "...", "opset": 18, "exporter": {"torch": "...", "onnx": "..."},
     "components": {"dinov2": {"file": "dinov2.onnx",
                               "inputs": [{"name": "images", "shape": ["S", 3, H, W], "dtype": "float32"}],
                               "outputs": [...]}, ...}}

Shapes use the symbol ``"S"`` for the dynamic frame count (the batch dimension B = 1 is folded away).
Every backend passes its inputs through :func:`check_inputs` before handing memory to an engine.

The exporter also records ``"model_config"`` (the `VGGTConfig` the graphs were traced from, as
``VGGTConfig.to_dict`` gives it) and ``"files"`` (the size and SHA-256 of every graph and external data file:
``{"dinov2.onnx": {"size": ..., "sha256": "..."}, ...}``), so that a graph truncated, changed or left by another
export is told apart from the one the manifest describes. Exports written before these fields existed lack them and
still load.

A quantized export (``vggt-ros-quantize --scheme int8 | fp8``) adds a ``"quantization"`` section:
``{"scheme": "int8", "stages": ["dinov2", "aggregator"], "plan_sha256": "...", "parameters_sha256": "...",
"plan": {...}, ...}``. Its digest is part of the TensorRT engine cache key, and a pipeline refuses to run it at
another precision than its scheme.
"""

from __future__ import annotations

import hashlib
import json
import math
import reprlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Union

import torch

from ..model.stages import STAGE_NAMES
from ..quantized_formats.plan import quantized_scheme_in
from ..quantized_formats.schemes import QDQ_SCHEMES, W4A16

MANIFEST_FORMAT = 1
MANIFEST_FILE = "manifest.json"
FRAMES = "S"
REEXPORT = "re-export the model"
_HASH_CHUNK = 1 << 20
# The exported components are the model's stages, in execution order.
COMPONENT_NAMES = STAGE_NAMES

_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "bool": torch.bool,
}

Dim = Union[int, str]


class BackendUnavailableError(RuntimeError):
    """The requested inference backend cannot run here (missing package or device); the message names an alternative."""


class TensorContractError(ValueError):
    """A tensor handed to an engine does not match the manifest's name, dtype, shape or device."""


class FrameCountError(ValueError):
    """The number of frames is outside the optimisation profile the engines were built for."""


class ManifestError(ValueError):
    """manifest.json is missing or malformed, or the files beside it are not the ones it describes (an export that
    was damaged, edited or interrupted); the message names the field or the file and says to re-export."""


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks (graphs and engines are gigabytes)."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _object(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ManifestError(f"{MANIFEST_FILE}: {where} must be a JSON object, got {reprlib.repr(value)}; {REEXPORT}")
    return value


def _require(mapping: Any, key: str, where: str) -> Any:
    if key not in _object(mapping, where):
        raise ManifestError(f"{MANIFEST_FILE}: {where} has no '{key}' field; {REEXPORT}")
    return mapping[key]


def _typed(mapping: Any, key: str, where: str, kind: type, described: str) -> Any:
    """``mapping[key]``, which must be a ``kind`` (``described`` in the error); a JSON true is no integer."""
    value = _require(mapping, key, where)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ManifestError(
            f"{MANIFEST_FILE}: '{key}' of {where} must be {described}, got {reprlib.repr(value)}; {REEXPORT}"
        )
    return value


def _file_name(name: str, where: str) -> str:
    """``name`` if it names a file directly in the export folder (the exporter writes no other kind)."""
    if name in ("", ".", "..") or Path(name).name != name:
        raise ManifestError(
            f"{MANIFEST_FILE}: {where} must be a file name in the export folder, got {name!r}; {REEXPORT}"
        )
    return name


@dataclass(frozen=True)
class FramesProfile:
    """Range of frame counts S an engine set accepts; ``opt`` is the size TensorRT tunes its kernels for."""

    min: int
    opt: int
    max: int

    def __post_init__(self) -> None:
        if not (1 <= self.min <= self.opt <= self.max):
            raise ManifestError(f"frames profile must satisfy 1 <= min <= opt <= max, got {self}")

    @classmethod
    def from_manifest(cls, frames: Any) -> FramesProfile:
        return cls(*(_typed(frames, k, "'frames'", int, "an integer") for k in ("min", "opt", "max")))

    def to_manifest(self) -> dict[str, int]:
        return {"min": self.min, "opt": self.opt, "max": self.max}

    def check(self, frames: int) -> None:
        """Raise :class:`FrameCountError` unless ``min <= frames <= max``."""
        if frames < self.min or frames > self.max:
            advice = (
                f"rebuild the engines with a larger --max-frames (at least {frames})"
                if frames > self.max
                else f"pass at least {self.min} frames"
            )
            raise FrameCountError(
                f"{frames} frames is outside the engines' frame range [{self.min}, {self.max}]; {advice}"
            )


@dataclass(frozen=True)
class TensorSpec:
    """One engine input or output: its name, shape (ints and the symbol ``"S"``) and dtype name."""

    name: str
    shape: tuple[Dim, ...]
    dtype: str

    def __post_init__(self) -> None:
        for dim in self.shape:
            if not (dim == FRAMES or (isinstance(dim, int) and not isinstance(dim, bool) and dim > 0)):
                raise ManifestError(
                    f"{MANIFEST_FILE}: tensor '{self.name}': dims must be positive ints or '{FRAMES}', "
                    f"got {self.shape}; {REEXPORT}"
                )
        if self.dtype not in _DTYPES:
            raise ManifestError(
                f"{MANIFEST_FILE}: tensor '{self.name}': unsupported dtype '{self.dtype}' (known: {sorted(_DTYPES)}); "
                f"{REEXPORT}"
            )

    @classmethod
    def from_manifest(cls, entry: Any, component: str = "a component") -> TensorSpec:
        name = _typed(entry, "name", f"a tensor of {component}", str, "a string")
        where = f"tensor '{name}' of {component}"
        shape = _typed(entry, "shape", where, list, "a list")
        return cls(name, tuple(shape), _typed(entry, "dtype", where, str, "a string"))

    def to_manifest(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]

    def concrete_shape(self, frames: int) -> tuple[int, ...]:
        """The shape with ``"S"`` replaced by ``frames``."""
        return tuple(frames if dim == FRAMES else int(dim) for dim in self.shape)

    def frames_of(self, tensor: torch.Tensor) -> int:
        """S read from the tensor's first symbolic dim (shape checked by :func:`check_tensor`)."""
        if FRAMES not in self.shape:
            raise TensorContractError(f"tensor '{self.name}' has no '{FRAMES}' dim to read the frame count from")
        if tensor.ndim != len(self.shape):
            raise TensorContractError(
                f"tensor '{self.name}': expected {len(self.shape)} dims {self.shape}, got shape {tuple(tensor.shape)}"
            )
        return int(tensor.shape[self.shape.index(FRAMES)])


@dataclass(frozen=True)
class ComponentSpec:
    """One exported component (one ONNX graph, one engine): file name and I/O tensors in engine order."""

    name: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_manifest(cls, name: str, entry: Any) -> ComponentSpec:
        where = f"component '{name}'"
        inputs = tuple(TensorSpec.from_manifest(e, where) for e in _typed(entry, "inputs", where, list, "a list"))
        outputs = tuple(TensorSpec.from_manifest(e, where) for e in _typed(entry, "outputs", where, list, "a list"))
        if not inputs or not outputs:
            raise ManifestError(f"{MANIFEST_FILE}: {where} needs at least one input and one output; {REEXPORT}")
        file = _file_name(_typed(entry, "file", where, str, "a string"), f"'file' of {where}")
        return cls(name, file, inputs, outputs)

    def to_manifest(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "inputs": [t.to_manifest() for t in self.inputs],
            "outputs": [t.to_manifest() for t in self.outputs],
        }


@dataclass(frozen=True)
class FileRecord:
    """One file of an export as the exporter wrote it: its size and SHA-256."""

    size: int
    sha256: str

    @classmethod
    def of(cls, path: Path) -> FileRecord:
        return cls(path.stat().st_size, sha256_file(path))

    @classmethod
    def from_manifest(cls, name: str, entry: Any) -> FileRecord:
        where = f"file '{name}'"
        return cls(_typed(entry, "size", where, int, "an integer"), _typed(entry, "sha256", where, str, "a string"))

    def to_manifest(self) -> dict[str, Any]:
        return {"size": self.size, "sha256": self.sha256}

    def problem(self, path: Path, contents: bool) -> str | None:
        """Why ``path`` is not this file, or None; ``contents`` compares the SHA-256 too (reads the whole file)."""
        if not path.is_file():
            return f"{path} is missing"
        size = path.stat().st_size
        if size != self.size:
            return f"{path} is {size} bytes where {MANIFEST_FILE} records {self.size} (truncated or replaced)"
        if contents and sha256_file(path) != self.sha256:
            return f"{path} is not the file {MANIFEST_FILE} records (its SHA-256 differs)"
        return None


@dataclass(frozen=True)
class ExportManifest:
    """The parsed manifest.json of one exported engine set (one image size, one frame range)."""

    height: int
    width: int
    frames: FramesProfile
    weights_sha256: str
    opset: int
    exporter: dict[str, str]
    components: dict[str, ComponentSpec]
    quantization: Mapping[str, Any] | None = None  # the "quantization" section of a Q/DQ export
    model_config: Mapping[str, Any] | None = None  # VGGTConfig.to_dict of the exported model (None: older export)
    files: Mapping[str, FileRecord] | None = None  # every file of the export by name (None: older export)

    def __post_init__(self) -> None:
        missing = [name for name in COMPONENT_NAMES if name not in self.components]
        if missing:
            raise ManifestError(f"{MANIFEST_FILE}: components {missing} are missing; {REEXPORT}")
        unknown = sorted(set(self.components) - set(COMPONENT_NAMES))
        if unknown:
            raise ManifestError(
                f"{MANIFEST_FILE}: components {unknown} are unknown (an export has {list(COMPONENT_NAMES)}); {REEXPORT}"
            )
        _tapped_layers(self.components["aggregator"])
        self._check_size()
        unrecorded = [c.file for c in self.components.values() if self.files is not None and c.file not in self.files]
        if unrecorded:
            raise ManifestError(f"{MANIFEST_FILE}: 'files' does not record {unrecorded}; {REEXPORT}")
        if self.quantization is not None:
            scheme = _require(self.quantization, "scheme", "'quantization'")
            if scheme not in QDQ_SCHEMES:
                raise ManifestError(
                    f"{MANIFEST_FILE}: quantization scheme {scheme!r} is not one of {QDQ_SCHEMES}; "
                    "quantize again with vggt-ros-quantize"
                )
            _require(self.quantization, "plan_sha256", "'quantization'")

    @property
    def quantization_scheme(self) -> str | None:
        """'int8' or 'fp8' for a Q/DQ export, else None."""
        return None if self.quantization is None else str(self.quantization["scheme"])

    def check_files(self, directory: str | Path, contents: bool = False) -> None:
        """Raise `ManifestError` unless ``directory`` holds the files this manifest records, of their sizes, and with
        ``contents`` of their SHA-256 too (reads every graph: gigabytes for VGGT-1B). Of an export written before the
        files were recorded, only the graphs' presence is checked."""
        directory = Path(directory)
        if self.files is None:
            graphs = [directory / c.file for c in self.components.values()]
            problems = [f"{graph} is missing" for graph in graphs if not graph.is_file()]
        else:
            found = (record.problem(directory / name, contents) for name, record in self.files.items())
            problems = [problem for problem in found if problem]
        if problems:
            raise ManifestError(
                f"{'; '.join(problems)}: the export in {directory} is damaged or incomplete; {REEXPORT}"
            )

    @property
    def tapped_layers(self) -> tuple[int, ...]:
        """The aggregator layers whose tokens the heads read, from its outputs' names ``tokens_<layer>``."""
        return _tapped_layers(self.components["aggregator"])

    @property
    def patch_size(self) -> int:
        """Pixels per patch side: the exported model's (older exports: from the image size and the encoder's token
        count)."""
        if self.model_config is not None:
            return _typed(self.model_config, "patch_size", "'model_config'", int, "an integer")
        return max(1, round(math.sqrt(self.height * self.width / self._patch_tokens())))

    def _patch_tokens(self) -> int:
        """h*w of the encoder's output (S, h*w, C)."""
        shape = self.components["dinov2"].outputs[0].shape
        if len(shape) != 3 or not isinstance(shape[1], int):
            raise ManifestError(
                f"{MANIFEST_FILE}: the output of component 'dinov2' must be (S, patches, channels), got {list(shape)}; "
                f"{REEXPORT}"
            )
        return shape[1]

    def _check_size(self) -> None:
        """H and W must be positive multiples of the model's patch size, and of as many patches as the encoder gives
        tokens (a size edited in the manifest is not the graphs')."""
        tokens = self._patch_tokens()
        if self.height <= 0 or self.width <= 0 or self.patch_size <= 0:
            raise ManifestError(
                f"{MANIFEST_FILE}: height, width and the patch size must be positive, got {self.height}x{self.width} "
                f"and {self.patch_size}; {REEXPORT}"
            )
        patch = self.patch_size
        if self.height % patch or self.width % patch:
            raise ManifestError(
                f"{MANIFEST_FILE}: height and width must be positive multiples of {patch}, got "
                f"{self.height}x{self.width}; {REEXPORT}"
            )
        patches = (self.height // patch) * (self.width // patch)
        if patches != tokens:
            raise ManifestError(
                f"{MANIFEST_FILE}: a {self.height}x{self.width} image has {patches} patches of {patch} pixels, but "
                f"component 'dinov2' outputs {tokens} patch tokens: the size is not its graphs'; {REEXPORT}"
            )

    @classmethod
    def from_manifest(cls, manifest: Any) -> ExportManifest:
        top = "the top level"
        fmt = _require(manifest, "format", top)
        if fmt != MANIFEST_FORMAT:
            raise ManifestError(
                f"{MANIFEST_FILE}: format {fmt!r} is not supported (expected {MANIFEST_FORMAT}); {REEXPORT}"
            )
        components = _object(_require(manifest, "components", top), "'components'")
        exporter = _object(_require(manifest, "exporter", top), "'exporter'")
        quantization = manifest.get("quantization")
        model_config = manifest.get("model_config")
        files = manifest.get("files")
        return cls(
            height=_typed(manifest, "height", top, int, "an integer"),
            width=_typed(manifest, "width", top, int, "an integer"),
            frames=FramesProfile.from_manifest(_require(manifest, "frames", top)),
            weights_sha256=_typed(manifest, "weights_sha256", top, str, "a string"),
            opset=_typed(manifest, "opset", top, int, "an integer"),
            exporter={key: _typed(exporter, key, "'exporter'", str, "a string") for key in exporter},
            components={name: ComponentSpec.from_manifest(name, entry) for name, entry in components.items()},
            quantization=None if quantization is None else _object(quantization, "'quantization'"),
            model_config=None if model_config is None else _object(model_config, "'model_config'"),
            files=None if files is None else _file_records(_object(files, "'files'")),
        )

    @classmethod
    def load(cls, directory: str | Path) -> ExportManifest:
        """Read ``<directory>/manifest.json``."""
        path = Path(directory) / MANIFEST_FILE
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            if quantized_scheme_in(path.parent) == W4A16:  # weights for the torch backend, no graphs
                raise ManifestError(
                    f"{path.parent} holds a vggt-ros-quantize w4a16 export, which has no ONNX graphs: run it on the "
                    "torch backend with precision w4a16"
                ) from None
            raise ManifestError(
                f"{path} not found; export the ONNX graphs first (`vggt-ros-build-engines --backend onnxruntime "
                f"--out {path.parent}` with the --height and --width of the run's model images; --backend tensorrt "
                "also builds the TensorRT engines)"
            ) from None
        except (OSError, UnicodeDecodeError) as err:  # a folder, unreadable, not UTF-8 text
            raise ManifestError(f"{path} cannot be read ({err}); {REEXPORT}") from None
        try:
            return cls.from_manifest(json.loads(text))
        except json.JSONDecodeError as err:
            raise ManifestError(f"{path} is not valid JSON: {err}; {REEXPORT}") from None

    def to_manifest(self) -> dict[str, Any]:
        return {
            "format": MANIFEST_FORMAT,
            "height": self.height,
            "width": self.width,
            "frames": self.frames.to_manifest(),
            "weights_sha256": self.weights_sha256,
            "opset": self.opset,
            "exporter": dict(self.exporter),
            "components": {name: c.to_manifest() for name, c in self.components.items()},
            **({} if self.quantization is None else {"quantization": dict(self.quantization)}),
            **({} if self.model_config is None else {"model_config": dict(self.model_config)}),
            **({} if self.files is None else {"files": {n: r.to_manifest() for n, r in self.files.items()}}),
        }


def _file_records(files: Mapping[str, Any]) -> dict[str, FileRecord]:
    return {
        _file_name(name, "a name in 'files'"): FileRecord.from_manifest(name, entry) for name, entry in files.items()
    }


def _tapped_layers(aggregator: ComponentSpec) -> tuple[int, ...]:
    names = [tensor.name for tensor in aggregator.outputs]
    layers = [name.removeprefix("tokens_") for name in names]
    if not all(name.startswith("tokens_") and layer.isdecimal() for name, layer in zip(names, layers)):
        raise ManifestError(
            f"{MANIFEST_FILE}: the outputs of component 'aggregator' must be named tokens_<layer>, got {names}; "
            f"{REEXPORT}"
        )
    return tuple(int(layer) for layer in layers)


def check_tensor(spec: TensorSpec, tensor: Any, frames: int, device: torch.device | str | None = None) -> torch.Tensor:
    """Check one tensor against its spec and return it C-contiguous.

    Engines read inputs through raw device pointers assuming a dense row-major layout, so a strided view
    (a permuted numpy image, channels_last memory, a slice) would be read as garbage without any error.
    ``.contiguous()`` copies exactly those inputs and is free for ones already dense.

    Args:
        spec: the expected name, shape (``"S"`` = ``frames``) and dtype.
        tensor: the candidate.
        frames: the frame count S of this call.
        device: if given, the tensor must already live there (no silent host-device copies).
    Raises:
        TensorContractError naming the tensor with expected vs got.
    """
    if not isinstance(tensor, torch.Tensor):
        raise TensorContractError(f"tensor '{spec.name}': expected a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype != spec.torch_dtype:
        raise TensorContractError(f"tensor '{spec.name}': expected dtype {spec.dtype}, got {tensor.dtype}")
    expected = spec.concrete_shape(frames)
    if tuple(tensor.shape) != expected:
        raise TensorContractError(
            f"tensor '{spec.name}': expected shape {expected} (= {spec.shape} with S={frames}), "
            f"got {tuple(tensor.shape)}"
        )
    if device is not None:
        want = torch.device(device)
        if tensor.device.type != want.type or (want.index is not None and tensor.device.index != want.index):
            raise TensorContractError(f"tensor '{spec.name}': expected it on device {want}, got {tensor.device}")
    return tensor.contiguous()


def check_inputs(
    component: ComponentSpec,
    inputs: Mapping[str, Any],
    frames_profile: FramesProfile,
    device: torch.device | str | None = None,
) -> tuple[dict[str, torch.Tensor], int]:
    """Check a component's full input set; return the C-contiguous inputs (engine order) and the frame count S.

    Raises:
        TensorContractError: missing/unexpected names, or a tensor failing :func:`check_tensor`
            (including inputs that disagree on S).
        FrameCountError: S outside the engines' profile.
    """
    expected_names = [spec.name for spec in component.inputs]
    missing = [name for name in expected_names if name not in inputs]
    unexpected = sorted(set(inputs) - set(expected_names))
    if missing or unexpected:
        raise TensorContractError(
            f"component '{component.name}' takes inputs {expected_names}; missing {missing}, unexpected {unexpected}"
        )
    first = component.inputs[0]
    first_tensor = inputs[first.name]
    if not isinstance(first_tensor, torch.Tensor):
        raise TensorContractError(f"tensor '{first.name}': expected a torch.Tensor, got {type(first_tensor).__name__}")
    # The frame range is checked before shapes: "rebuild with a larger --max-frames" is the actionable message.
    frames = first.frames_of(first_tensor)
    frames_profile.check(frames)
    checked = {spec.name: check_tensor(spec, inputs[spec.name], frames, device) for spec in component.inputs}
    return checked, frames
