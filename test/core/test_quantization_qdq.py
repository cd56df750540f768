# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""INT8 / FP8 explicit quantization: rounding as ONNX defines it, Q/DQ placement in the exported graphs, and ONNX
Runtime on the CPU against the torch fake-quantized model (the tiny model cut to four aggregator blocks, and
full-width VGGT-1B layers).

ONNX Runtime is run with its Q/DQ fusions off (``session.disable_quant_qdq``): on x86 CPUs without VNNI its fused
integer MatMul multiplies u8 x s8 pairs with saturating 16-bit sums, which changes results far beyond rounding
(measured here: 10 % of the DINOv2 output), whereas DequantizeLinear -> float MatMul computes what the graph says.
TensorRT has no such path.
"""

import dataclasses
import json
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from safetensors.torch import load_file, save_file

from conftest import TINY
from support.torch_threads import one_torch_thread  # noqa: F401 (autouse, module-wide)
from vggt_ros.model import VGGT
from vggt_ros.model.stages import build_stages, run_stages, torch_stage_runner
from vggt_ros.quantization.calibration import reference_pass
from vggt_ros.quantization.compensation import compensation_token
from vggt_ros.quantization.export import export_qdq
from vggt_ros.quantization.objective import errors_vs_reference
from vggt_ros.quantization.qdq import QDQExport, QDQLinear, fake_quantize
from vggt_ros.quantized_formats.compensated_head import CompensatedCameraHead
from vggt_ros.quantized_formats.layers import linear_layers, replaced
from vggt_ros.quantized_formats.plan import LINEAR_NAMES, QuantizationPlan, default_plan, scheme_blocks
from vggt_ros.runtime.engine_cache import EngineCacheKey, manifest_sha256
from vggt_ros.runtime.io_contract import ExportManifest, FramesProfile

# ONNX Runtime against the torch fake-quantized model. One quantized layer computes the same Q/DQ arithmetic in both,
# up to float summation order: max |diff| <= 1e-4 * max |torch| (as for the heads' float graphs). Through many
# layers, such a difference sometimes moves an INT8 activation across a rounding boundary (one step is 1/127 of its
# range), which a random model amplifies through its aggregator blocks: relative L1 error <= 3 %.
FLOAT_GRAPH_TOLERANCE = 1e-4
QUANTIZED_PERCENT = 3.0
FRAGILE = ["aggregator.frame_blocks.1", "aggregator.global_blocks.2"]
MICRO_DEPTH = 4


def session(path_or_bytes):
    options = ort.SessionOptions()
    options.add_session_config_entry("session.disable_quant_qdq", "1")
    return ort.InferenceSession(path_or_bytes, options, providers=["CPUExecutionProvider"])


def qdq_roundtrip_graph(scheme, scale):
    element = TensorProto.INT8 if scheme == "int8" else TensorProto.FLOAT8E4M3FN
    zero = helper.make_tensor("zero", element, [], b"\x00", raw=True)
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "scale", "zero"], ["q"]),
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "qdq",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None])],
        [zero, numpy_helper.from_array(np.array(scale, np.float32), "scale")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)], ir_version=9).SerializeToString()


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
@pytest.mark.parametrize("scale", [1.0, 0.037])
def test_torch_quantize_dequantize_is_onnx_quantize_linear_bitwise(scheme, scale):
    ties = [0.5, 1.5, 2.5, -0.5, -2.5, 126.5]  # round half to even
    out_of_range = [200.0, -300.0, 600.0, -1e6]  # saturate
    x = np.array([*ties, *out_of_range, 0.3, 0.0, 1e-5, -7.77, 3.14159], np.float32) * np.float32(scale)
    expected = session(qdq_roundtrip_graph(scheme, scale)).run(None, {"x": x})[0]
    ours = fake_quantize(torch.from_numpy(x), torch.tensor(scale, dtype=torch.float32), scheme).numpy()
    np.testing.assert_array_equal(ours, expected)


def write_micro_model(folder: Path) -> Path:
    """The tiny fixture model cut to its first four aggregator blocks (the heads read blocks 0-3), as a weights
    folder: the same structure and weights, with an ONNX export six times faster than the 24-block original's."""
    config = json.loads((TINY / "config.json").read_text())
    config["aggregator"]["depth"] = MICRO_DEPTH
    for head in ("depth_head", "point_head"):
        config[head]["intermediate_layer_idx"] = list(range(MICRO_DEPTH))
    state = load_file(str(TINY / "state_dict.safetensors"))
    kept = {
        key: value
        for key, value in state.items()
        if not key.startswith(("aggregator.frame_blocks.", "aggregator.global_blocks."))
        or int(key.split(".")[2]) < MICRO_DEPTH
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config))
    save_file(kept, str(folder / "state_dict.safetensors"))
    return folder


@pytest.fixture(scope="module")
def quantized_tiny(tmp_path_factory):
    """The micro model with INT8 layers (two blocks protected) and the compensation token; its Q/DQ export."""
    model = VGGT.from_pretrained(write_micro_model(tmp_path_factory.mktemp("micro")))
    window = torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(0))
    blocks = scheme_blocks(model, "int8")
    reference = reference_pass(model, [window], [f"{b}.{linear}" for b in blocks for linear in LINEAR_NAMES])
    token = compensation_token(reference.camera_tokens, reference.patch_token_norm)
    model.camera_head = CompensatedCameraHead(model.camera_head, token)
    plan = default_plan("int8", blocks, FRAGILE)
    layers = {
        name: QDQLinear(layer, "int8", reference.statistics[name].all_amax)
        for name, layer in linear_layers(model, plan.layer_names()).items()
    }
    out = tmp_path_factory.mktemp("int8")
    manifest = export_qdq(model, plan, layers, out, (28, 28), FramesProfile(1, 2, 4))
    return {
        "model": model,
        "window": window,
        "reference": reference,
        "plan": plan,
        "layers": layers,
        "out": out,
        "manifest": manifest,
    }


def producers(graph):
    return {output: node for node in graph.node for output in node.output}


def test_qdq_nodes_sit_on_exactly_the_planned_linear_inputs_and_weights(quantized_tiny):
    plan, out = quantized_tiny["plan"], quantized_tiny["out"]
    for stage, in_stage in (
        ("dinov2", lambda name: name.startswith("aggregator.patch_embed.")),
        ("aggregator", lambda name: not name.startswith("aggregator.patch_embed.")),
    ):
        graph = onnx.load(str(out / f"{stage}.onnx")).graph
        made_by = producers(graph)
        initializers = {i.name: i for i in graph.initializer}
        quantized = set()
        for matmul in (n for n in graph.node if n.op_type == "MatMul"):
            activation, weight = (made_by.get(name) for name in matmul.input)
            if weight is None or weight.op_type != "DequantizeLinear":
                assert activation is None or activation.op_type != "DequantizeLinear"  # no half-quantized MatMul
                continue
            stored = initializers[weight.input[0]]
            assert stored.data_type == TensorProto.INT8 and list(initializers[weight.input[1]].dims) == [stored.dims[1]]
            assert [a.i for a in weight.attribute if a.name == "axis"] == [1]  # one scale per output channel
            assert activation.op_type == "DequantizeLinear" and made_by[activation.input[0]].op_type == "QuantizeLinear"
            assert list(initializers[activation.input[1]].dims) == []  # one scale per tensor
            quantized.add(weight.name.removesuffix("/weight_dequantize"))
        planned = {name for name in plan.layer_names() if in_stage(name)}
        assert quantized == planned and planned
        assert (
            not {f"{block}.{linear}" for block in FRAGILE for linear in ("attn.qkv", "mlp.fc1", "mlp.fc2")} & quantized
        )
    for head in ("camera_head", "depth_head", "point_head"):
        ops = {node.op_type for node in onnx.load(str(out / f"{head}.onnx")).graph.node}
        assert not ops & {"QuantizeLinear", "DequantizeLinear"}, f"{head} must stay floating point"


def onnxruntime_runner(out):
    manifest = ExportManifest.load(out)
    sessions = {name: session(str(out / spec.file)) for name, spec in manifest.components.items()}

    def run(name, inputs):
        spec = manifest.components[name]
        results = sessions[name].run(None, {k: v.numpy() for k, v in inputs.items()})
        return {o.name: torch.from_numpy(r) for o, r in zip(spec.outputs, results)}

    return run


def test_onnxruntime_runs_the_quantized_export_like_the_torch_fake_quantized_model(quantized_tiny):
    model, window = quantized_tiny["model"], quantized_tiny["window"]
    onnx_run = onnxruntime_runner(quantized_tiny["out"])
    torch_run = torch_stage_runner(build_stages(model, (28, 28)), model.config.tapped_layers)
    per_stage = {}

    def both(name, inputs):  # every ONNX graph gets exactly the torch stage's inputs
        expected, got = torch_run(name, inputs), onnx_run(name, inputs)
        per_stage[name] = max(float((got[k] - v).abs().sum() / v.abs().sum()) for k, v in expected.items())
        return expected

    with replaced(model, quantized_tiny["layers"]), torch.no_grad():
        fake = run_stages(both, window, model.config.tapped_layers)
    onnx_outputs = run_stages(onnx_run, window, model.config.tapped_layers)
    end_to_end = errors_vs_reference([onnx_outputs], [fake])
    against_fp32 = errors_vs_reference([onnx_outputs], quantized_tiny["reference"].outputs)
    print(
        f"int8, ONNX Runtime vs torch fake-quantized: per stage (relative L1) {per_stage}; end to end (%) "
        f"{end_to_end}; ONNX Runtime vs FP32 (%) {against_fp32}"
    )
    assert max(per_stage[head] for head in ("camera_head", "depth_head", "point_head")) <= FLOAT_GRAPH_TOLERANCE
    assert max(per_stage["dinov2"], per_stage["aggregator"]) <= QUANTIZED_PERCENT / 100
    assert max(end_to_end.values()) <= QUANTIZED_PERCENT
    assert min(against_fp32.values()) > 0  # quantized, and the compensation token changed the camera


def test_manifest_and_engine_cache_key_carry_the_plan(quantized_tiny):
    manifest = quantized_tiny["manifest"]
    reloaded = ExportManifest.load(quantized_tiny["out"])
    assert reloaded == manifest and reloaded.quantization_scheme == "int8" and manifest.opset == 18
    assert QuantizationPlan.from_json(reloaded.quantization["plan"]) == quantized_tiny["plan"]
    key = EngineCacheKey.for_export(manifest, manifest.frames, "fp16", "10.3.0", (8, 9))
    unquantized = dataclasses.replace(manifest, quantization=None)
    other_scales = dataclasses.replace(manifest, quantization={**manifest.quantization, "parameters_sha256": "0" * 64})
    for other in (unquantized, other_scales):  # another plan or calibration is another cache entry
        assert EngineCacheKey.for_export(other, manifest.frames, "fp16", "10.3.0", (8, 9)).digest() != key.digest()
    assert key.manifest_sha256 == manifest_sha256(reloaded)


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
def test_a_full_width_vggt_layer_matches_through_onnxruntime(tmp_path, scheme):
    torch.manual_seed(0)
    linear = torch.nn.Linear(1024, 4096)
    x = torch.randn(2, 37, 1024)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            linear,
            (x,),
            str(tmp_path / "linear.onnx"),
            input_names=["x"],
            output_names=["y"],
            dynamic_axes={"x": {0: "S"}},
            opset_version=19,
            dynamo=False,
        )
    name = "aggregator.frame_blocks.0.mlp.fc1"
    layer = QDQLinear(linear, scheme, float(x.abs().max()))
    plan = QuantizationPlan(scheme, {"aggregator.frame_blocks.0": ["mlp.fc1"]}, None)
    graph = QDQExport(plan, {name: layer}, {name: linear.weight}).rewrite(
        "aggregator", onnx.load(tmp_path / "linear.onnx")
    )
    onnx.checker.check_model(graph)
    result = torch.from_numpy(session(graph.SerializeToString()).run(None, {"x": x.numpy()})[0])
    with torch.no_grad():
        expected = layer(x)
    assert float((result - expected).abs().max() / expected.abs().max()) < FLOAT_GRAPH_TOLERANCE
    assert graph.ByteSize() < 0.3 * 4 * linear.weight.numel()  # 8-bit weights: a quarter of float32 (plus scales)
