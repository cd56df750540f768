# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""INT8 / FP8 explicit quantization: the torch fake-quantized layer and the Q/DQ nodes of the exported ONNX graphs.

TensorRT only runs low precision where the graph says so (the TensorRT sweep of VGGT found INT8 no faster than FP16
and FP8 seven times slower without quantize/dequantize placement). The placement follows TensorRT's guidance for
linear layers: each quantized MatMul reads

* its activation through QuantizeLinear -> DequantizeLinear, one static per-tensor scale from calibration;
* its weight as pre-quantized INT8 / FP8 E4M3 values through DequantizeLinear, one scale per output channel.

Scales are symmetric (zero point 0): ``amax / 127`` for INT8 (values in [-127, 127] for weights, [-128, 127] for
activations, round half to even), ``amax / 448`` for FP8 E4M3 (saturating cast). `QDQLinear` computes exactly that
in torch, so the torch model with `QDQLinear` layers is the reference the ONNX graphs are tested against.

The graphs are exported from the floating-point model as usual (`vggt_ros.export.onnx_export`) and `QDQExport`
rewrites the DINOv2 and aggregator graphs afterwards. A planned layer's MatMul is found by its weight: the exporter
folds ``W^T`` into an initializer, whose bytes identify the layer whatever name the exporter gave it. Every planned
layer must be found, so a change in the exporter's output cannot silently leave layers in floating point. The DPT
heads and the camera head are not touched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vggt_ros.quantized_formats.plan import QuantizationPlan, block_stage, split_layer_name
from vggt_ros.quantized_formats.schemes import FP8, INT8, QDQ_SCHEMES

QMAX = {INT8: 127.0, FP8: 448.0}
# QuantizeLinear with per-axis scales needs opset 13; float8 types need opset 19.
MIN_OPSET = {INT8: 13, FP8: 19}
QDQ_STAGES = ("dinov2", "aggregator")
_INT8_ACTIVATION_RANGE = (-128, 127)


class QDQExportError(RuntimeError):
    """An exported graph in which a planned layer cannot be found, or that cannot hold the scheme's types."""


def symmetric_scale(amax: torch.Tensor, scheme: str) -> torch.Tensor:
    """float32 scales ``amax / QMAX``; 1.0 where amax is 0 (an all-zero tensor quantizes to zeros either way)."""
    amax = torch.as_tensor(amax, dtype=torch.float32)
    return torch.where(amax > 0, amax / QMAX[scheme], torch.ones_like(amax))


def quantized_values(x: torch.Tensor, scale: torch.Tensor, scheme: str) -> torch.Tensor:
    """The stored values: int8 ``round(x / scale)`` clamped, or float8_e4m3fn of the clamped ``x / scale``."""
    scaled = x.float() / scale
    if scheme == INT8:
        return torch.round(scaled).clamp(*_INT8_ACTIVATION_RANGE).to(torch.int8)
    if scheme == FP8:
        return scaled.clamp(-QMAX[FP8], QMAX[FP8]).to(torch.float8_e4m3fn)
    raise ValueError(f"scheme must be one of {QDQ_SCHEMES}, got {scheme!r}")


def fake_quantize(x: torch.Tensor, scale: torch.Tensor, scheme: str) -> torch.Tensor:
    """QuantizeLinear followed by DequantizeLinear, in float32: ``quantized_values(x) * scale``."""
    return quantized_values(x, scale, scheme).float() * scale


class QDQLinear(nn.Module):
    """A linear layer with INT8 / FP8 weights (per output channel) and a static per-tensor input scale.

    Buffers: ``weight`` (N, K) float32 dequantised, ``weight_scale`` (N,), ``input_scale`` () float32. The stored
    values (``quantized_weight``, int8 or float8_e4m3fn) are kept for the ONNX export.
    """

    def __init__(self, linear: nn.Linear, scheme: str, input_amax: float) -> None:
        super().__init__()
        if scheme not in QDQ_SCHEMES:
            raise ValueError(f"scheme must be one of {QDQ_SCHEMES}, got {scheme!r}")
        self.scheme = scheme
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        weight_scale = symmetric_scale(weight.abs().amax(dim=1), scheme)
        self.quantized_weight = quantized_values(weight, weight_scale[:, None], scheme)
        self.register_buffer("weight", self.quantized_weight.float() * weight_scale[:, None])
        self.register_buffer("weight_scale", weight_scale)
        self.register_buffer("input_scale", symmetric_scale(torch.tensor(float(input_amax)), scheme))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().clone(), requires_grad=False)

    @property
    def storage_bytes(self) -> int:
        """Bytes of the stored weight values, their scales and the input scale."""
        return sum(t.numel() * t.element_size() for t in (self.quantized_weight, self.weight_scale, self.input_scale))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        quantized = fake_quantize(x, self.input_scale, self.scheme).to(x.dtype)
        return F.linear(quantized, self.weight.to(x.dtype), None if self.bias is None else self.bias.to(x.dtype))


def _array_digest(array: np.ndarray) -> str:
    return hashlib.sha256(f"{array.shape}|{array.dtype}|".encode() + np.ascontiguousarray(array).tobytes()).hexdigest()


@dataclass(frozen=True)
class QDQExport:
    """What `vggt_ros.export.onnx_export.export_onnx` needs to write Q/DQ nodes for one quantized model.

    layers: full module name -> its `QDQLinear`; source_weights: full module name -> the float32 weight (N, K) of
    the model being exported (how the layer's MatMul is recognised).
    """

    plan: QuantizationPlan
    layers: Mapping[str, QDQLinear]
    source_weights: Mapping[str, torch.Tensor]
    stages: tuple[str, ...] = QDQ_STAGES

    def __post_init__(self) -> None:
        if self.plan.scheme not in QDQ_SCHEMES:
            raise ValueError(f"Q/DQ export is for {QDQ_SCHEMES}, not {self.plan.scheme!r}")
        missing = sorted(set(self.plan.layer_names()) - set(self.layers) | set(self.layers) - set(self.source_weights))
        if missing:
            raise ValueError(f"layers {missing} lack a quantized layer or a source weight")

    @property
    def scheme(self) -> str:
        return self.plan.scheme

    @property
    def min_opset(self) -> int:
        return MIN_OPSET[self.scheme]

    def parameters_sha256(self) -> str:
        """Digest of every scale and stored value: a new calibration is a new export, even with the same plan."""
        digest = hashlib.sha256()
        for name in sorted(self.layers):
            layer = self.layers[name]
            digest.update(name.encode())
            for tensor in (layer.input_scale, layer.weight_scale, layer.quantized_weight):
                digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()

    def manifest_entry(self) -> dict[str, Any]:
        """The ``quantization`` section of manifest.json."""
        return {
            "scheme": self.scheme,
            "stages": list(self.stages),
            "weights": "per-output-channel symmetric, pre-quantized, DequantizeLinear",
            "activations": "per-tensor symmetric static scale, QuantizeLinear + DequantizeLinear",
            "plan_sha256": self.plan.sha256(),
            "parameters_sha256": self.parameters_sha256(),
            "plan": self.plan.to_json(),
        }

    def rewrite(self, stage: str, graph: Any) -> Any:
        """Insert the Q/DQ nodes of the planned layers of ``stage`` into its ONNX model (in place; returned).

        Raises `QDQExportError` if a planned layer of the stage has no MatMul reading its weight, or if the graph's
        opset cannot hold the scheme's types.
        """
        import onnx

        if stage not in self.stages:
            return graph
        names = [name for name in self.plan.layer_names() if block_stage(split_layer_name(name)[0]) == stage]
        if not names:
            return graph
        opset = max((o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")), default=0)
        if opset < self.min_opset:
            raise QDQExportError(
                f"{stage}.onnx has opset {opset}; {self.scheme} Q/DQ nodes need opset >= "
                f"{self.min_opset} (export with --opset {self.min_opset})"
            )
        by_digest = {
            _array_digest(self.source_weights[n].detach().float().t().contiguous().cpu().numpy()): n for n in names
        }
        initializers = {init.name: init for init in graph.graph.initializer}
        nodes, found, replaced_weights = [], set(), set()
        for node in graph.graph.node:
            weight_name = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else None
            if weight_name in initializers and weight_name not in replaced_weights:
                array = onnx.numpy_helper.to_array(initializers[weight_name])
                name = by_digest.get(_array_digest(array)) if array.dtype == np.float32 and array.ndim == 2 else None
                if name is not None:
                    nodes += self._layer_nodes(graph, name, node)
                    replaced_weights.add(weight_name)
                    found.add(name)
            nodes.append(node)
        missing = [name for name in names if name not in found]
        if missing:
            raise QDQExportError(
                f"{stage}.onnx has no MatMul reading the weights of {missing}; the exporter's graph "
                "form changed (weights no longer folded into MatMul initializers)"
            )
        kept = [init for init in graph.graph.initializer if init.name not in replaced_weights]
        del graph.graph.initializer[:]
        graph.graph.initializer.extend(kept)
        del graph.graph.node[:]
        graph.graph.node.extend(nodes)
        return graph

    def _layer_nodes(self, graph: Any, name: str, matmul: Any) -> list:
        """Q/DQ nodes and initializers for one layer; rewires ``matmul`` to read them."""
        from onnx import TensorProto, helper, numpy_helper

        layer = self.layers[name]
        element_type = TensorProto.INT8 if self.scheme == INT8 else TensorProto.FLOAT8E4M3FN
        stored = layer.quantized_weight.t().contiguous().cpu()  # the graph's MatMul weight is W^T, (K, N)

        def quantized_tensor(tensor_name: str, values: torch.Tensor):
            return helper.make_tensor(
                tensor_name, element_type, list(values.shape), values.view(torch.uint8).numpy().tobytes(), raw=True
            )

        zeros = torch.zeros(stored.shape[1], dtype=stored.dtype)
        graph.graph.initializer.extend(
            [
                numpy_helper.from_array(
                    layer.input_scale.detach().cpu().numpy().astype(np.float32), f"{name}.input_scale"
                ),
                quantized_tensor(f"{name}.input_zero_point", zeros[:1].reshape(())),
                quantized_tensor(f"{name}.weight_quantized", stored),
                numpy_helper.from_array(
                    layer.weight_scale.detach().cpu().numpy().astype(np.float32), f"{name}.weight_scale"
                ),
                quantized_tensor(f"{name}.weight_zero_point", zeros),
            ]
        )
        activation = matmul.input[0]
        nodes = [
            helper.make_node(
                "QuantizeLinear",
                [activation, f"{name}.input_scale", f"{name}.input_zero_point"],
                [f"{name}/input_quantized"],
                name=f"{name}/input_quantize",
            ),
            helper.make_node(
                "DequantizeLinear",
                [f"{name}/input_quantized", f"{name}.input_scale", f"{name}.input_zero_point"],
                [f"{name}/input_dequantized"],
                name=f"{name}/input_dequantize",
            ),
            helper.make_node(
                "DequantizeLinear",
                [f"{name}.weight_quantized", f"{name}.weight_scale", f"{name}.weight_zero_point"],
                [f"{name}/weight_dequantized"],
                name=f"{name}/weight_dequantize",
                axis=1,
            ),
        ]
        matmul.input[0] = f"{name}/input_dequantized"
        matmul.input[1] = f"{name}/weight_dequantized"
        return nodes
