"""One pipeline over the five stages, whichever backend executes them."""
from __future__ import annotations

from pathlib import Path

import torch

from ..model.stages import run_stages
from ..model.vggt import check_images
from .io_contract import ExportManifest

BACKENDS = ("torch", "onnxruntime", "tensorrt")
PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class Pipeline:
    """`pipeline(images)` takes what `VGGT.forward` takes and returns the same output dict.

    images: (S, 3, H, W) or (B, S, 3, H, W) float in [0, 1]. Sequences of a batch run one after another:
    the engines are built for one sequence with a dynamic frame count.
    """

    def __init__(
        self,
        stage_runner_for_size,
        tapped_layers: tuple[int, ...],
        device: torch.device,
        backend: str,
        image_hw: tuple[int, int] | None = None,
        patch_size: int = 14,
    ) -> None:
        self._runner_for_size = stage_runner_for_size
        self.tapped_layers = tapped_layers
        self.device = device
        self.backend = backend
        self.image_hw = image_hw  # fixed for engines; None: any size (torch backend)
        self.patch_size = patch_size

    @classmethod
    def from_model(cls, model, backend: str = "torch", device: str | torch.device | None = None,
                   precision: str = "fp32") -> "Pipeline":
        """Run the model's own stage modules eagerly with torch (CPU or CUDA; fp32, fp16 or bf16).

        The model is moved and converted in place (encoder and aggregator to the precision, heads float32),
        so no second copy of the weights exists.
        """
        if backend != "torch":
            raise ValueError(f"from_model runs the torch backend; for {backend!r} export first and use from_engine_dir")
        from .torch_backend import torch_stage_runner_factory

        device = torch.device(device) if device is not None else next(model.parameters()).device
        factory = torch_stage_runner_factory(model, device, _precision(precision))
        return cls(factory, model.config.tapped_layers, device, backend, patch_size=model.config.patch_size)

    @classmethod
    def from_engine_dir(cls, path: str | Path, backend: str = "onnxruntime", **options) -> "Pipeline":
        """Run an exported set (`manifest.json` + five ONNX graphs) with ONNX Runtime or TensorRT.

        onnxruntime options: `providers` (default CPU). tensorrt options: `engine_cache` (folder of built engines,
        default: `path`), `precision` ("fp16"), `build_missing` (True).
        """
        manifest = ExportManifest.load(path)
        tapped = tuple(int(t.name.removeprefix("tokens_")) for t in manifest.components["aggregator"].outputs)
        if backend == "onnxruntime":
            from .onnxruntime_backend import onnxruntime_stage_runner

            runner, device = onnxruntime_stage_runner(Path(path), manifest, **options), torch.device("cpu")
        elif backend == "tensorrt":
            from .tensorrt_backend import load_or_build_engines

            components = load_or_build_engines(path, options.pop("engine_cache", path), **options)
            runner, device = (lambda name, inputs: components[name](**inputs)), torch.device("cuda")
        else:
            raise ValueError(f"unknown engine backend {backend!r}; choose 'onnxruntime' or 'tensorrt'")
        return cls(lambda image_hw: runner, tapped, device, backend, image_hw=(manifest.height, manifest.width))

    def stage_runner(self, image_hw: tuple[int, int]):
        """The backend's `run(stage name, inputs) -> outputs` for one image size (benchmarks time stages with it)."""
        return self._runner_for_size(tuple(image_hw))

    def __call__(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        images = check_images(images, self.patch_size)
        image_hw = tuple(images.shape[-2:])
        if self.image_hw is not None and image_hw != self.image_hw:
            raise ValueError(
                f"these {self.backend} engines were exported for {self.image_hw[0]}x{self.image_hw[1]} images, "
                f"got {image_hw[0]}x{image_hw[1]}; re-export with --height {image_hw[0]} --width {image_hw[1]}"
            )
        run = self.stage_runner(image_hw)
        images = images.to(self.device, torch.float32)
        outputs = [run_stages(run, sequence, self.tapped_layers) for sequence in images]
        return {k: torch.cat([o[k] for o in outputs], dim=1 if k == "pose_enc_list" else 0) for k in outputs[0]}


def _precision(name: str) -> torch.dtype:
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; choose one of {sorted(PRECISIONS)}")
    return PRECISIONS[name]
