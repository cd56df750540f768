# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Quantized VGGT against bf16: weight memory, ms per call and peak memory, and the error against FP32.

    python bench/quantization.py --model full --device cuda --frames 2 8 --height 350 --width 518 --json q.json
    python bench/quantization.py --model full --device cpu --frames 2 --height 28 --width 42 --variants bf16 w4a16

VGGT-1B is built with random weights (nothing is downloaded), so the errors say nothing about a trained model's
accuracy; they show that each variant computes what it should. Weights are quantized without calibration:
QVGGT's published plan (frame blocks 14, 17, 23 and global block 23 keep FP16 weights except attn.proj; every
other DINOv2, aggregator and camera-trunk block INT4, groups of 128), round to nearest; INT8 / FP8 scopes are the
DINOv2 and aggregator blocks. Variants (each skipped, with the reason, where it cannot run):

* ``bf16``: the baseline, `Pipeline.from_model(precision="bf16")`.
* ``w4a16``: the packed export's own path, unpack then matmul, FP16 activations (any device).
* ``w4a16-tinygemm``: the same INT4 values through torch's fused tinygemm kernel (``aten._weight_int4pack_mm``,
  CUDA, bf16 activations): the kernel torchao's int4 weight-only format runs on.
* ``w4a16-torchao``: torchao ``Int4WeightOnlyConfig`` (tile-packed, CUDA) applied to the dequantized weights, when
  torchao is installed (it re-derives its own asymmetric scales, so its error differs slightly).
* ``fp8``: ``torch._scaled_mm`` with FP8 E4M3 weights (per-tensor scale) and activations (scale per call), bf16
  output, compute capability >= 8.9 (Ada, Hopper).

Per variant and frame count S: ms per call (median of --repeats, whole pipeline), peak memory
(torch.cuda.max_memory_allocated, CUDA only), the bytes of weights on the device, and the relative error (%) of
depth, points and camera against the FP32 model on the same images. The tinygemm variant also reports its largest
difference from the unpack-then-matmul path. Prints a table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "test"))
from backends import machine_description  # noqa: E402
from conftest import TINY  # noqa: E402
from vggt_ros.model import VGGT, VGGTConfig  # noqa: E402
from vggt_ros.quantization.export import (  # noqa: E402
    fp16_weight_bytes,
    held_weight_bytes,
    pack_w4a16,
    quantized_layer_bytes,
)
from vggt_ros.quantization.objective import errors_vs_reference  # noqa: E402
from vggt_ros.quantized_formats.int4 import FakeInt4Linear, W4A16Linear, unpack_int4  # noqa: E402
from vggt_ros.quantized_formats.layers import linear_layers, replace_modules  # noqa: E402
from vggt_ros.quantized_formats.plan import default_plan, group_size_for, scheme_blocks  # noqa: E402
from vggt_ros.runtime import Pipeline  # noqa: E402

VARIANTS = ("bf16", "w4a16", "w4a16-tinygemm", "w4a16-torchao", "fp8")
QVGGT_FRAGILE = (
    "aggregator.frame_blocks.14",
    "aggregator.frame_blocks.17",
    "aggregator.frame_blocks.23",
    "aggregator.global_blocks.23",
)
_TINYGEMM_INNER_K_TILES = 8


def random_model(kind: str, device: torch.device) -> VGGT:
    """The tiny fixture, or VGGT-1B with random weights initialised on ``device`` (no 5 GB detour through the CPU)."""
    if kind == "tiny":
        return VGGT.from_pretrained(TINY, device=device).eval()
    with torch.device("meta"):
        model = VGGT(VGGTConfig())
    model = model.to_empty(device=device)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.ndim >= 2:  # weights: unit-variance outputs; tokens and tables alike
                fan_in = parameter[0].numel() if parameter.ndim > 2 else parameter.shape[-1]
                parameter.normal_(0.0, fan_in**-0.5, generator=generator)
            else:  # norms and layer scales 1, biases 0
                parameter.fill_(1.0 if name.endswith(("weight", "gamma")) else 0.0)
    return model.eval()


def qvggt_plan(model: VGGT):
    blocks = scheme_blocks(model, "w4a16")
    return default_plan("w4a16", blocks, [b for b in QVGGT_FRAGILE if b in blocks])


def packed_model(model: VGGT) -> tuple[VGGT, dict]:
    """``model`` (modified) with the QVGGT plan's layers packed to INT4, and what its weights weigh."""
    plan = qvggt_plan(model)
    fp16 = fp16_weight_bytes(model)
    layers = {
        name: FakeInt4Linear.from_linear(layer, group_size_for(layer.in_features, plan.group_size, name))
        for name, layer in linear_layers(model, plan.layer_names()).items()
    }
    model = pack_w4a16(model, layers, token=None)
    sizes = quantized_layer_bytes({name: model.get_submodule(name) for name in plan.layer_names()})
    return model, {
        "fp16_weight_bytes": fp16,
        "quantized_layers": sizes,
        "weight_bytes": held_weight_bytes(fp16, sizes["fp16_bytes"], sizes["stored_bytes"], None),
    }


class TinygemmW4A16Linear(nn.Module):
    """The INT4 values of a `W4A16Linear` in tinygemm's layout: w = (u - 8) * scale + 0 with u = q + 8."""

    def __init__(self, layer: W4A16Linear) -> None:
        super().__init__()
        unsigned = (unpack_int4(layer.packed_weight) + 8).to(torch.uint8)
        packed = (unsigned[:, ::2] << 4) | unsigned[:, 1::2]  # tinygemm reads the even element from the high nibble
        self.register_buffer("packed", torch.ops.aten._convert_weight_to_int4pack(packed, _TINYGEMM_INNER_K_TILES))
        scales = layer.weight_scales.to(torch.bfloat16)
        self.register_buffer(
            "scales_and_zeros", torch.stack((scales, torch.zeros_like(scales)), -1).transpose(0, 1).contiguous()
        )
        self.input_scale = layer.input_scale
        self.bias = layer.bias
        self.group_size, self.out_features = layer.group_size, layer.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_scale is not None:
            x = x / self.input_scale.to(x.dtype)
        flat = x.reshape(-1, x.shape[-1]).to(torch.bfloat16)
        y = torch.ops.aten._weight_int4pack_mm(flat, self.packed, self.group_size, self.scales_and_zeros)
        y = y.reshape(*x.shape[:-1], self.out_features).to(x.dtype)
        return y if self.bias is None else y + self.bias.to(x.dtype)


class Fp8Linear(nn.Module):
    """FP8 E4M3 weights (per-tensor scale) and activations (scale from each call's max |x|) through _scaled_mm."""

    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().max().clamp(min=1e-12) / 448.0
        self.register_buffer("weight", (weight / scale).to(torch.float8_e4m3fn))
        self.register_buffer("weight_scale", scale.reshape(()))
        self.bias = linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        scale = flat.abs().max().float().clamp(min=1e-12) / 448.0
        quantized = (flat.float() / scale).clamp(-448, 448).to(torch.float8_e4m3fn)
        y = torch._scaled_mm(
            quantized,
            self.weight.t(),
            scale_a=scale,
            scale_b=self.weight_scale,
            bias=None if self.bias is None else self.bias.to(torch.bfloat16),
            out_dtype=torch.bfloat16,
        )
        return y.reshape(*x.shape[:-1], -1).to(x.dtype)


def why_not(variant: str, device: torch.device) -> str | None:
    """None if ``variant`` can run here, else why not."""
    if variant in ("w4a16-tinygemm", "w4a16-torchao", "fp8") and device.type != "cuda":
        return "needs CUDA"
    if variant == "w4a16-torchao":
        try:
            import torchao  # noqa: F401
        except ImportError as err:
            return f"torchao is not installed ({err})"
    if variant == "fp8" and torch.cuda.get_device_capability(device) < (8, 9):
        return f"FP8 matmuls need compute capability >= 8.9, this GPU has {torch.cuda.get_device_capability(device)}"
    return None


def build_variant(variant: str, kind: str, device: torch.device) -> tuple[Pipeline, dict]:
    """The variant's pipeline, and facts about its weights (bytes on the device, quantized-layer sizes)."""
    model = random_model(kind, device)
    info: dict = {}
    precision = "bf16"
    if variant == "fp8":
        names = [
            f"{b}.{n}" for b in scheme_blocks(model, "fp8") for n in ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
        ]
        replace_modules(model, {name: Fp8Linear(layer) for name, layer in linear_layers(model, names).items()})
    elif variant != "bf16":
        model, info = packed_model(model)
        precision = "w4a16" if variant == "w4a16" else "bf16"
        if variant == "w4a16-tinygemm":
            info["max_abs_difference_vs_unpack"] = replace_with_tinygemm(model, device)
        elif variant == "w4a16-torchao":
            replace_with_torchao(model, device)
    pipeline = Pipeline.from_model(model, device=device, precision=precision)  # converts the model in place
    info["weight_bytes_on_device"] = device_bytes(model)
    return pipeline, info


def replace_with_tinygemm(model: VGGT, device: torch.device) -> float:
    """Swap the packed layers for tinygemm ones; the largest output difference on one layer, as a layout check."""
    packed = {name: module for name, module in model.named_modules() if isinstance(module, W4A16Linear)}
    fused = {name: TinygemmW4A16Linear(layer).to(device) for name, layer in packed.items()}
    name = next(iter(packed))
    probe = torch.randn(64, packed[name].in_features, device=device, dtype=torch.bfloat16)
    difference = float((fused[name](probe) - packed[name](probe)).abs().max())
    replace_modules(model, fused)
    return difference


def replace_with_torchao(model: VGGT, device: torch.device) -> None:
    """Swap the packed layers for torchao INT4 weight-only ones built from their dequantized weights."""
    from torchao.quantization import Int4WeightOnlyConfig, quantize_

    packed = {name: module for name, module in model.named_modules() if isinstance(module, W4A16Linear)}
    dequantized = {}
    for name, layer in packed.items():
        linear = nn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None, device=device)
        linear.weight.data = layer.dequantized_weight() / (
            1 if layer.input_scale is None else layer.input_scale.float()
        )
        if layer.bias is not None:
            linear.bias.data = layer.bias.data.float()
        dequantized[name] = linear
    replace_modules(model, dequantized)
    model.to(torch.bfloat16)
    quantize_(
        model,
        Int4WeightOnlyConfig(group_size=128, int4_packing_format="tile_packed_to_4d"),
        filter_fn=lambda module, fqn: fqn in dequantized,
    )


def device_bytes(model: nn.Module) -> int:
    """Bytes of a model's parameters and buffers as they sit on the device."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def time_variant(pipeline: Pipeline, images: torch.Tensor, warmup: int, repeats: int) -> tuple[float, float | None]:
    device = pipeline.device
    for _ in range(warmup):
        pipeline(images)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        pipeline(images)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(1e3 * (time.perf_counter() - start))
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return statistics.median(times), peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=("tiny", "full"), default="full")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--variants", nargs="+", choices=VARIANTS, default=list(VARIANTS))
    parser.add_argument("--frames", nargs="+", type=int, default=[2, 8])
    parser.add_argument("--height", type=int, default=350)
    parser.add_argument("--width", type=int, default=518)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    image_hw = (args.height, args.width)
    generator = torch.Generator().manual_seed(0)
    images = {s: torch.rand(s, 3, *image_hw, generator=generator) for s in args.frames}

    reference_model = random_model(args.model, device).float()
    with torch.inference_mode():
        references = {
            s: {k: v.float().cpu() for k, v in reference_model(images[s].to(device)).items()} for s in args.frames
        }
    del reference_model
    rows, skipped = [], {}
    for variant in args.variants:
        reason = why_not(variant, device)
        if reason is not None:
            skipped[variant] = reason
            print(f"  {variant}: skipped, {reason}", file=sys.stderr)
            continue
        try:
            pipeline, info = build_variant(variant, args.model, device)
        except Exception as err:  # noqa: BLE001 - a variant that fails to build must not stop the others
            skipped[variant] = f"failed to build: {type(err).__name__}: {err}"
            print(f"  {variant}: {skipped[variant]}", file=sys.stderr)
            continue
        for frames in args.frames:
            with torch.inference_mode():
                ms, peak = time_variant(pipeline, images[frames], args.warmup, args.repeats)
                outputs = {k: v.float().cpu() for k, v in pipeline(images[frames]).items()}
            errors = errors_vs_reference([outputs], [references[frames]])
            rows.append(
                {"variant": variant, "frames": frames, "ms": ms, "peak_gib": peak, "error_vs_fp32": errors, **info}
            )
            print(f"  {variant} S={frames}: {ms:.1f} ms" + (f", peak {peak:.2f} GiB" if peak else ""), file=sys.stderr)
        del pipeline
        if device.type == "cuda":
            torch.cuda.empty_cache()

    machine = machine_description(args.device)
    print(
        f"VGGT {args.model} (random weights) at {args.height}x{args.width} on {machine}; ms per call, median of "
        f"{args.repeats}; error vs FP32 in % (random weights: not an accuracy figure)"
    )
    print(f"{'variant':<16}{'S':>4}{'ms':>10}{'peak GiB':>10}{'depth %':>10}{'points %':>10}{'camera %':>10}")
    for row in rows:
        peak = f"{row['peak_gib']:.2f}" if row["peak_gib"] is not None else "-"
        e = row["error_vs_fp32"]
        print(
            f"{row['variant']:<16}{row['frames']:>4}{row['ms']:>10.1f}{peak:>10}{e['depth_rel']:>10.3g}"
            f"{e['points_rel']:>10.3g}{e['camera_rel']:>10.3g}"
        )
    for variant, reason in skipped.items():
        print(f"{variant:<16} skipped: {reason}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"machine": machine, "model": args.model, "image_hw": image_hw, "rows": rows, "skipped": skipped},
                indent=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
