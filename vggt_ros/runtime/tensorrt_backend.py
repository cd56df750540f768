# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Thin TensorRT 10 layer: build one engine from an ONNX graph, run it on torch CUDA tensors, cache all five.

Everything that can be checked without a GPU (the tensor contract, the cache key and validation) lives in
``io_contract`` and ``engine_cache``; this module only talks to TensorRT. ``tensorrt`` is imported lazily so
the rest of the runtime works on machines without it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

import torch

from ..files import write_bytes_atomically
from .engine_cache import PRECISIONS, EngineCacheKey, cache_entry, record_engine, validate_entry
from .io_contract import (
    COMPONENT_NAMES,
    BackendUnavailableError,
    ComponentSpec,
    ExportManifest,
    FramesProfile,
    TensorContractError,
    check_inputs,
)

Log = Callable[[str], None]
_ALTERNATIVES = "use the 'onnxruntime' (CPU) or the 'torch' backend instead"
_MIN_TENSORRT_MAJOR = 10


def import_tensorrt() -> Any:
    """The ``tensorrt`` module (>= 10), or :class:`BackendUnavailableError` naming the alternatives."""
    try:
        import tensorrt as trt
    except ImportError as err:
        raise BackendUnavailableError(
            f"the TensorRT backend needs the 'tensorrt' Python package (TensorRT >= {_MIN_TENSORRT_MAJOR}), "
            f"which is not importable ({err}); install it, or {_ALTERNATIVES}"
        ) from err
    if int(trt.__version__.split(".")[0]) < _MIN_TENSORRT_MAJOR:
        raise BackendUnavailableError(
            f"TensorRT {trt.__version__} is too old: the TensorRT backend needs TensorRT >= {_MIN_TENSORRT_MAJOR}; "
            f"upgrade it, or {_ALTERNATIVES}"
        )
    return trt


def check_tensorrt_available() -> None:
    """:class:`BackendUnavailableError` naming the alternatives unless TensorRT >= 10 and a CUDA GPU are there:
    for tools that would otherwise export for minutes before the first TensorRT call."""
    import_tensorrt()
    _require_cuda()


def _require_cuda() -> None:
    if not torch.cuda.is_available():
        raise BackendUnavailableError(f"the TensorRT backend needs a CUDA GPU visible to torch; {_ALTERNATIVES}")


def _torch_dtype(trt: Any, dtype: Any) -> torch.dtype:
    mapping = {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.BF16: torch.bfloat16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
        trt.DataType.BOOL: torch.bool,
    }
    if dtype not in mapping:
        raise TensorContractError(f"engine tensor dtype {dtype} has no torch equivalent supported here")
    return mapping[dtype]


def _progress_monitor(trt: Any, label: str, log: Log) -> Any:
    """A ``trt.IProgressMonitor`` logging each builder phase with its step count and duration.

    The class is defined here because its base class only exists once tensorrt is imported. TensorRT calls
    it from several threads, hence the lock.
    """

    class BuildProgress(trt.IProgressMonitor):
        def __init__(self) -> None:
            trt.IProgressMonitor.__init__(self)
            self._lock = threading.Lock()
            self._started: dict[str, float] = {}
            self._steps: dict[str, int] = {}

        def phase_start(self, phase_name: str, parent_phase: str | None, num_steps: int) -> None:
            with self._lock:
                self._started[phase_name] = time.perf_counter()
                self._steps[phase_name] = num_steps
                indent = "  " if parent_phase else ""
                log(f"[{label}] {indent}{phase_name} ({num_steps} steps)")

        def step_complete(self, phase_name: str, step: int) -> bool:
            with self._lock:
                total = self._steps.get(phase_name, 0)
                if total >= 10 and (step + 1) % max(1, total // 4) == 0:
                    log(f"[{label}]   {phase_name}: {step + 1}/{total}")
            return True  # False would cancel the build

        def phase_finish(self, phase_name: str) -> None:
            with self._lock:
                elapsed = time.perf_counter() - self._started.pop(phase_name, time.perf_counter())
                self._steps.pop(phase_name, None)
                log(f"[{label}] {phase_name} done in {elapsed:.1f} s")

    return BuildProgress()


def build_engine(
    onnx_path: str | Path,
    engine_path: str | Path,
    spec: ComponentSpec,
    frames_profile: FramesProfile,
    precision: str = "fp16",
    workspace_gib: float = 8.0,
    timing_cache_path: str | Path | None = None,
    log: Log = print,
) -> float:
    """Build and write one serialized engine; return the build time in seconds.

    Args:
        onnx_path: the component's ONNX graph (external weight files next to it are found by TensorRT).
        engine_path: where the engine is written (atomically).
        spec: the component's I/O contract; every input gets one optimisation profile over ``frames_profile``.
        precision: "fp16" (FP16 kernels allowed), "fp32" (also disables TF32, for reference accuracy), or the
            scheme of a quantized (Q/DQ) export: "int8" or "fp8" (FP16 kernels plus the scheme's, where the graph's
            Q/DQ nodes place them; FP8 needs compute capability 8.9 or newer: Ada, Hopper).
        workspace_gib: builder scratch memory limit.
        timing_cache_path: read if present and rewritten after the build, so later builds skip kernel timing.
        log: receives progress lines and the build time.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    trt = import_tensorrt()
    _require_cuda()
    trt_logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(trt_logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, trt_logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise RuntimeError(f"TensorRT could not parse {onnx_path}: {errors}")
    graph_inputs = {network.get_input(i).name for i in range(network.num_inputs)}
    if graph_inputs != {t.name for t in spec.inputs}:
        raise TensorContractError(
            f"{onnx_path} has inputs {sorted(graph_inputs)} but the manifest lists "
            f"{[t.name for t in spec.inputs]}; re-export the model"
        )

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision in ("fp16", "int8", "fp8"):
        config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
        elif precision == "fp8":
            if torch.cuda.get_device_capability() < (8, 9):
                raise ValueError(
                    f"FP8 engines need compute capability 8.9 or newer (Ada, Hopper); this GPU is "
                    f"{torch.cuda.get_device_capability()}: use an int8 export"
                )
            config.set_flag(trt.BuilderFlag.FP8)
    else:  # fp32
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for tensor in spec.inputs:
        profile.set_shape(
            tensor.name,
            tensor.concrete_shape(frames_profile.min),
            tensor.concrete_shape(frames_profile.opt),
            tensor.concrete_shape(frames_profile.max),
        )
    config.add_optimization_profile(profile)
    timing_cache_path = Path(timing_cache_path) if timing_cache_path is not None else None
    cached_timings = timing_cache_path.read_bytes() if timing_cache_path and timing_cache_path.is_file() else b""
    config.set_timing_cache(config.create_timing_cache(cached_timings), ignore_mismatch=False)
    monitor = _progress_monitor(trt, spec.name, log)  # must outlive the build
    config.progress_monitor = monitor

    frames = f"{frames_profile.min}..{frames_profile.max} (opt {frames_profile.opt})"
    log(f"[{spec.name}] building {precision} engine from {onnx_path}, frames {frames}")
    start = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    seconds = time.perf_counter() - start
    if serialized is None:
        raise RuntimeError(f"TensorRT failed to build {spec.name} from {onnx_path}; see the TensorRT errors above")
    # memoryview: the engine can be gigabytes, so it is written from TensorRT's buffer without a copy.
    write_bytes_atomically(engine_path, memoryview(serialized))
    if timing_cache_path is not None:
        write_bytes_atomically(timing_cache_path, memoryview(config.get_timing_cache().serialize()))
    log(f"[{spec.name}] built in {seconds:.1f} s -> {engine_path}")
    return seconds


class TensorRTComponent:
    """Runs one deserialized engine on torch CUDA tensors: ``component(**inputs) -> {output name: tensor}``.

    Work is enqueued on the current torch CUDA stream, so outputs are ordered with later torch work on that
    stream; the input copies made by the contract check stay valid because torch's allocator only reuses their
    memory for work enqueued later on the same stream.
    """

    def __init__(self, engine_path: str | Path, spec: ComponentSpec, frames_profile: FramesProfile) -> None:
        trt = import_tensorrt()
        _require_cuda()
        self.spec = spec
        self.frames_profile = frames_profile
        self.device = torch.device("cuda", torch.cuda.current_device())
        # The logger and runtime must outlive the engine, so they are kept with it.
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self._engine = self._runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
        if self._engine is None:
            raise RuntimeError(f"TensorRT could not deserialize {engine_path}; delete it so it is rebuilt")
        self._context = self._engine.create_execution_context()
        engine_tensors = {self._engine.get_tensor_name(i) for i in range(self._engine.num_io_tensors)}
        for tensor in (*spec.inputs, *spec.outputs):
            if tensor.name not in engine_tensors:
                raise TensorContractError(f"engine {engine_path} has no tensor '{tensor.name}'; rebuild it")
            engine_dtype = _torch_dtype(trt, self._engine.get_tensor_dtype(tensor.name))
            if engine_dtype != tensor.torch_dtype:
                raise TensorContractError(
                    f"engine {engine_path} tensor '{tensor.name}' is {engine_dtype}, the manifest says {tensor.dtype}"
                )

    def __call__(self, **inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        checked, frames = check_inputs(self.spec, inputs, self.frames_profile, device=self.device)
        for name, tensor in checked.items():
            if not self._context.set_input_shape(name, tuple(tensor.shape)):
                raise TensorContractError(
                    f"{self.spec.name}: TensorRT rejected shape {tuple(tensor.shape)} for input '{name}'"
                )
            self._context.set_tensor_address(name, int(tensor.data_ptr()))
        outputs = {}
        for tensor in self.spec.outputs:
            shape = tuple(self._context.get_tensor_shape(tensor.name))
            if shape != tensor.concrete_shape(frames):
                raise TensorContractError(
                    f"{self.spec.name}: engine output '{tensor.name}' has shape {shape}, "
                    f"the manifest says {tensor.concrete_shape(frames)}; rebuild the engines"
                )
            outputs[tensor.name] = torch.empty(shape, dtype=tensor.torch_dtype, device=self.device)
            self._context.set_tensor_address(tensor.name, int(outputs[tensor.name].data_ptr()))
        if not self._context.execute_async_v3(torch.cuda.current_stream(self.device).cuda_stream):
            raise RuntimeError(f"TensorRT failed to enqueue {self.spec.name}; see the TensorRT errors above")
        return outputs


def load_or_build_engines(
    onnx_dir: str | Path,
    engine_dir: str | Path = "engines",
    precision: str = "fp16",
    frames_profile: FramesProfile | None = None,
    workspace_gib: float = 8.0,
    build_missing: bool = True,
    log: Log = print,
) -> dict[str, TensorRTComponent]:
    """The five components of an export, loaded from the engine cache, building any that are missing or invalid.

    Args:
        onnx_dir: the exporter's output folder (``manifest.json`` and the five ``.onnx`` graphs).
        engine_dir: cache root; entries live in ``<engine_dir>/<key digest>/``.
        precision: "fp16", "fp32", or the scheme of a quantized export ("int8", "fp8"; see `build_engine`).
        frames_profile: frame range to build for; defaults to the manifest's (the graphs are dynamic in S).
        workspace_gib: builder scratch memory limit.
        build_missing: if False, an engine that needs (re)building raises instead (a build takes minutes).
        log: receives "rebuilding <component>: <reason>" lines and build progress.
    Returns:
        ``{component name: runner}`` for every name in :data:`COMPONENT_NAMES`.
    """
    trt = import_tensorrt()
    _require_cuda()
    onnx_dir = Path(onnx_dir)
    manifest = ExportManifest.load(onnx_dir)
    frames_profile = frames_profile or manifest.frames
    key = EngineCacheKey.for_export(
        manifest, frames_profile, precision, trt.__version__, torch.cuda.get_device_capability()
    )
    entry = cache_entry(engine_dir, key)
    reasons = validate_entry(entry, COMPONENT_NAMES)
    if build_missing and any(reasons.values()):
        # The key holds the manifest's digest, so its engines must be built from the graphs it records.
        manifest.check_files(onnx_dir, contents=True)
    for name, reason in reasons.items():
        if reason is None:
            continue
        if not build_missing:
            raise RuntimeError(
                f"engine {name} needs rebuilding ({reason}) and build_missing is False; build the engines on this "
                f"machine first: vggt-ros-build-engines --backend tensorrt --precision {precision} --out {onnx_dir}"
                + ("" if Path(engine_dir) == onnx_dir else f" (engines cached in {engine_dir})")
            )
        log(f"rebuilding {name}: {reason}")
        spec = manifest.components[name]
        seconds = build_engine(
            onnx_dir / spec.file,
            entry.engine_path(name),
            spec,
            frames_profile,
            precision=precision,
            workspace_gib=workspace_gib,
            timing_cache_path=entry.timing_cache_path,
            log=log,
        )
        record_engine(entry, name, seconds)
    return {
        name: TensorRTComponent(entry.engine_path(name), manifest.components[name], frames_profile)
        for name in COMPONENT_NAMES
    }
