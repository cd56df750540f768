# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""One pipeline over the five stages, whichever backend executes them."""

from __future__ import annotations

from pathlib import Path

import torch

from ..model.stages import OUTPUT_NAMES, run_encoder, run_heads, run_stages
from ..model.vggt import check_images
from ..quantized_formats.schemes import QDQ_SCHEMES, SCHEMES, W4A16, check_scheme_backend
from .io_contract import ExportManifest, FramesProfile

BACKENDS = ("torch", "onnxruntime", "tensorrt")
FLOAT_PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# Every precision the runtime takes: the float ones and the quantization schemes (`vggt_ros.quantized_formats.schemes`
# says which backend runs which scheme).
PRECISIONS = (*FLOAT_PRECISIONS, *SCHEMES)
# What the torch backend computes the encoder and the aggregator in: W4A16 is 16-bit activations (FP16).
TORCH_DTYPES = {**FLOAT_PRECISIONS, W4A16: torch.float16}


class Pipeline:
    """`pipeline(images)` takes what `VGGT.forward` takes and returns the same output dict.

    images: (S, 3, H, W) or (B, S, 3, H, W) float in [0, 1]. Sequences of a batch run one after another:
    the engines are built for one sequence with a dynamic frame count.

    Streaming callers split the work: `encode` runs DINOv2 frame by frame (its tokens can be cached per frame),
    `predict` runs the aggregator over a whole window and only the heads asked for, the DPT heads on chosen frames.
    """

    def __init__(
        self,
        stage_runner_for_size,
        tapped_layers: tuple[int, ...],
        device: torch.device,
        backend: str,
        patch_size: int,
        image_hw: tuple[int, int] | None = None,
        frames: FramesProfile | None = None,
    ) -> None:
        self._runner_for_size = stage_runner_for_size
        self.tapped_layers = tapped_layers
        self.device = device
        self.backend = backend
        self.patch_size = patch_size
        self.image_hw = image_hw  # fixed for engines; None: any size (torch backend)
        self.frames = frames  # frame range of engines; None: any count (torch backend)

    @classmethod
    def from_model(
        cls, model, backend: str = "torch", device: str | torch.device | None = None, precision: str = "fp32"
    ) -> "Pipeline":
        """Run the model's own stage modules eagerly with torch (CPU or CUDA; fp32, fp16, bf16 or w4a16).

        The model is moved and converted in place (encoder and aggregator to the precision, heads float32),
        so no second copy of the weights exists. w4a16 takes a model with packed INT4 layers
        (`vggt_ros.quantized_formats.w4a16_file.load_w4a16_model`) and runs its activations in FP16.
        """
        if backend != "torch":
            raise ValueError(f"from_model runs the torch backend; for {backend!r} export first and use from_engine_dir")
        from ..quantized_formats.int4 import W4A16Linear
        from .torch_backend import torch_stage_runner_factory

        if precision in QDQ_SCHEMES:
            check_scheme_backend(precision, backend)
        if precision == W4A16 and not any(isinstance(m, W4A16Linear) for m in model.modules()):
            raise ValueError(
                "precision 'w4a16' needs a model with packed INT4 weights; load the output folder of "
                "`vggt-ros-quantize --scheme w4a16` with vggt_ros.quantized_formats.w4a16_file.load_w4a16_model "
                "(create_pipeline does this from engine_dir), or choose a float precision for this model"
            )

        device = torch.device(device) if device is not None else next(model.parameters()).device
        factory = torch_stage_runner_factory(model, device, _precision(precision))
        return cls(factory, model.config.tapped_layers, device, backend, model.config.patch_size)

    @classmethod
    def from_engine_dir(
        cls, path: str | Path, backend: str = "onnxruntime", precision: str | None = None, **options
    ) -> "Pipeline":
        """Run an exported set (`manifest.json` + five ONNX graphs) with ONNX Runtime or TensorRT.

        precision: None runs the export as it is; a quantization scheme (int8, fp8) requires an export quantized
        with it, and a quantized export requires its scheme (a mismatch raises ValueError saying what to change).
        TensorRT builds a quantized export with FP16 kernels wherever its Q/DQ nodes do not set the precision.
        onnxruntime options: `providers` (default CPU). tensorrt options: `engine_cache` (folder of built engines,
        default: `path`), `build_missing` (True).
        """
        manifest = ExportManifest.load(path)
        _check_export_precision(manifest, backend, precision, path)
        if backend == "onnxruntime":
            from .onnxruntime_backend import onnxruntime_stage_runner

            runner, device = onnxruntime_stage_runner(Path(path), manifest, **options), torch.device("cpu")
        elif backend == "tensorrt":
            from .tensorrt_backend import load_or_build_engines

            builder_precision = manifest.quantization_scheme or precision or "fp16"
            components = load_or_build_engines(
                path, options.pop("engine_cache", path), precision=builder_precision, **options
            )
            runner, device = (lambda name, inputs: components[name](**inputs)), torch.device("cuda")
        else:
            raise ValueError(f"unknown engine backend {backend!r}; choose 'onnxruntime' or 'tensorrt'")
        return cls(
            lambda image_hw: runner,
            manifest.tapped_layers,
            device,
            backend,
            manifest.patch_size,
            image_hw=(manifest.height, manifest.width),
            frames=manifest.frames,
        )

    def stage_runner(self, image_hw: tuple[int, int]):
        """The backend's `run(stage name, inputs) -> outputs` for one image size (benchmarks time stages with it)."""
        return self._runner_for_size(tuple(image_hw))

    def _runner(self, image_hw: tuple[int, int]):
        if self.image_hw is not None and tuple(image_hw) != self.image_hw:
            raise ValueError(
                f"these {self.backend} engines were exported for {self.image_hw[0]}x{self.image_hw[1]} images, "
                f"got {image_hw[0]}x{image_hw[1]}; re-export with --height {image_hw[0]} --width {image_hw[1]}"
            )
        return self.stage_runner(image_hw)

    def __call__(self, images: torch.Tensor, outputs=OUTPUT_NAMES) -> dict[str, torch.Tensor]:
        """The VGGT output dict (batch axis included) with only ``outputs`` (default: all six)."""
        images = check_images(images, self.patch_size)
        run = self._runner(tuple(images.shape[-2:]))
        # C-contiguous, as the engines' contract requires: a channels-last view would switch torch's patch
        # embedding to another convolution kernel, whose results differ in the last bits.
        images = images.to(self.device, torch.float32).contiguous()
        results = [run_stages(run, sequence, self.tapped_layers, outputs) for sequence in images]
        return {k: torch.cat([r[k] for r in results], dim=1 if k == "pose_enc_list" else 0) for k in results[0]}

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """DINOv2 patch tokens (S, h*w, C) of one sequence's images (S, 3, H, W), on `device`."""
        images = check_images(images, self.patch_size)
        if images.shape[0] != 1:
            raise ValueError(f"encode takes one sequence (S, 3, H, W), got shape {tuple(images.shape)}")
        run = self._runner(tuple(images.shape[-2:]))
        return run_encoder(run, images[0].to(self.device, torch.float32).contiguous())

    def predict(
        self,
        patch_tokens: torch.Tensor,
        image_hw: tuple[int, int],
        outputs=OUTPUT_NAMES,
        dense_frames: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """One window from its patch tokens (S, h*w, C) of ``image_hw`` images; see `model.stages.run_heads`.

        The DPT heads run only on ``dense_frames`` (D,) window indices (None: all); outputs have no batch axis.
        """
        if patch_tokens.ndim != 3:
            raise ValueError(f"patch_tokens must be (S, h*w, C), got shape {tuple(patch_tokens.shape)}")
        if dense_frames is not None:
            dense_frames = torch.as_tensor(dense_frames, dtype=torch.int64)
            if (
                dense_frames.ndim != 1
                or len(dense_frames) == 0
                or not bool(((dense_frames >= 0) & (dense_frames < patch_tokens.shape[0])).all())
            ):
                raise ValueError(
                    f"dense_frames must be 1 or more indices in [0, {patch_tokens.shape[0]}), got {dense_frames}"
                )
        return run_heads(self._runner(tuple(image_hw)), patch_tokens, self.tapped_layers, outputs, dense_frames)


def check_precision(name: str) -> str:
    """``name`` if the runtime takes it (`PRECISIONS`), else ValueError listing them: the one precision check."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {list(PRECISIONS)}")
    return name


def _precision(name: str) -> torch.dtype:
    return TORCH_DTYPES[check_precision(name)]


def _check_export_precision(manifest: ExportManifest, backend: str, precision: str | None, path) -> None:
    """The precision a pipeline is asked for must match what the export holds (see `Pipeline.from_engine_dir`)."""
    if precision is not None:
        check_precision(precision)
    scheme = manifest.quantization_scheme
    if precision in SCHEMES:
        check_scheme_backend(precision, backend)
        if scheme != precision:
            holds = "an unquantized export" if scheme is None else f"an export quantized for {scheme}"
            raise ValueError(
                f"precision {precision!r} needs an export quantized for it, but {path} holds {holds}; "
                f"run `vggt-ros-quantize --scheme {precision} --out DIR` and set engine_dir to DIR"
            )
    elif scheme is not None and precision is not None:
        raise ValueError(
            f"{path} holds an export quantized for {scheme}; set precision to {scheme!r} to run it, "
            f"or set engine_dir to an unquantized export to run precision {precision!r}"
        )
