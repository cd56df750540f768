# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ONNX export of the five stages, and the torch / ONNX Runtime / TensorRT backends behind one Pipeline."""

from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
import torch

from conftest import TINY
from tolerances import assert_matches_reference
from vggt_ros.export.cli import build_engines_main
from vggt_ros.export.onnx_export import export_onnx, state_dict_sha256
from vggt_ros.model.stages import STAGE_NAMES
from vggt_ros.runtime import BackendUnavailableError, Pipeline, RuntimeConfig, create_pipeline
from vggt_ros.runtime.io_contract import FrameCountError, FramesProfile

# Most tests here run exported graphs of the tiny model, and each fixture image size costs an export first.
pytestmark = pytest.mark.slow

FRAMES = FramesProfile(1, 3, 5)


@pytest.fixture(scope="module")
def exported(tiny_model, fixture_case, tmp_path_factory):
    """One exported set per fixture image size."""
    out = tmp_path_factory.mktemp(f"export_{fixture_case['name']}")
    export_onnx(tiny_model, out, fixture_case["images"].shape[-2:], FRAMES)
    return out


def test_onnxruntime_reproduces_the_official_outputs(exported, fixture_case):
    pipeline = Pipeline.from_engine_dir(exported, backend="onnxruntime")
    errors = assert_matches_reference(pipeline(fixture_case["images"]), fixture_case)
    print(f"onnxruntime case {fixture_case['name']}:", {k: f"{v:.2e}" for k, v in errors.items()})


@pytest.mark.parametrize("num_frames", [1, 3, 5])
def test_one_export_serves_every_frame_count(exported, tiny_model, fixture_case, num_frames):
    pipeline = Pipeline.from_engine_dir(exported, backend="onnxruntime")
    images = torch.rand(
        num_frames, 3, *fixture_case["images"].shape[-2:], generator=torch.Generator().manual_seed(num_frames)
    )
    with torch.no_grad():
        reference = tiny_model(images)
    errors = assert_matches_reference(pipeline(images), reference)
    assert errors["depth"] < 1e-4


def test_manifest_records_the_contract(exported, tiny_model, fixture_case):
    manifest = json.loads((exported / "manifest.json").read_text())
    h, w = fixture_case["images"].shape[-2:]
    p = 5 + (h // 14) * (w // 14)
    assert (manifest["height"], manifest["width"]) == (h, w)
    assert manifest["frames"] == {"min": 1, "opt": 3, "max": 5}
    assert manifest["weights_sha256"] == state_dict_sha256(tiny_model)
    assert manifest["opset"] == 18 and manifest["exporter"]["torch"] == torch.__version__
    assert list(manifest["components"]) == list(STAGE_NAMES)
    io = {
        name: {t["name"]: t["shape"] for t in c["inputs"] + c["outputs"]} for name, c in manifest["components"].items()
    }
    assert io["dinov2"] == {"images": ["S", 3, h, w], "patch_tokens": ["S", p - 5, 16]}
    assert io["aggregator"]["tokens_23"] == ["S", p, 32] and len(io["aggregator"]) == 5
    assert io["camera_head"] == {"tokens_23": ["S", p, 32], "pose_enc": ["S", 9], "pose_enc_list": [4, "S", 9]}
    assert io["depth_head"]["depth"] == ["S", h, w, 1] and io["point_head"]["world_points_conf"] == ["S", h, w]
    for name, component in manifest["components"].items():
        graph = onnx.load(str(exported / component["file"]))
        onnx.checker.check_model(graph)
        graph_inputs = {
            i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.graph.input
        }
        assert graph_inputs == {t["name"]: t["shape"] for t in component["inputs"]}, name


def test_exported_graphs_have_no_data_dependent_control_flow(exported):
    for name in STAGE_NAMES:
        ops = {node.op_type for node in onnx.load(str(exported / f"{name}.onnx")).graph.node}
        assert not ops & {"If", "Loop", "Scan", "NonZero"}, f"{name}: {ops & {'If', 'Loop', 'Scan', 'NonZero'}}"


def test_large_graphs_use_external_data(tiny_model, tmp_path):
    export_onnx(tiny_model, tmp_path, (28, 42), FRAMES, external_data_threshold=0)
    for name in STAGE_NAMES:
        assert (tmp_path / f"{name}.onnx.data").stat().st_size > 0
        onnx.checker.check_model(str(tmp_path / f"{name}.onnx"))
    images = torch.rand(2, 3, 28, 42)
    with torch.no_grad():
        reference = tiny_model(images)
    assert_matches_reference(Pipeline.from_engine_dir(tmp_path, backend="onnxruntime")(images), reference)


def test_torch_backend_on_the_stages_equals_the_plain_model(tiny_model, fixture_case):
    pipeline = Pipeline.from_model(tiny_model, backend="torch", device="cpu", precision="fp32")
    with torch.no_grad():
        reference = tiny_model(fixture_case["images"])
    out = pipeline(fixture_case["images"])
    for key in reference:
        assert torch.equal(out[key], reference[key]), key


def _strided_variants(images: torch.Tensor) -> dict[str, torch.Tensor]:
    """The same pixels in layouts that a raw-pointer consumer would misread."""
    hwc = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())
    return {
        "numpy_hwc_permuted": torch.from_numpy(hwc).permute(0, 3, 1, 2),
        "channels_last": images.contiguous(memory_format=torch.channels_last),
        "column_major": images.transpose(-1, -2).contiguous().transpose(-1, -2),
    }


@pytest.mark.parametrize("backend", ["torch", "onnxruntime"])
def test_non_contiguous_inputs_give_correct_results(backend, tiny_model, exported, fixture_case):
    images = fixture_case["images"][0]
    pipeline = (
        Pipeline.from_model(tiny_model, device="cpu", precision="fp32")
        if backend == "torch"
        else Pipeline.from_engine_dir(exported, backend="onnxruntime")
    )
    expected = pipeline(images)
    for layout, variant in _strided_variants(images).items():
        assert not variant.is_contiguous() and torch.equal(variant, images)
        out = pipeline(variant)
        assert torch.allclose(out["depth"], expected["depth"], rtol=0, atol=1e-6), layout
        assert torch.allclose(out["pose_enc"], expected["pose_enc"], rtol=0, atol=1e-6), layout


@pytest.mark.parametrize("precision, tolerance", [("bf16", 0.1), ("fp16", 0.02)])
def test_reduced_precision_torch_backend_stays_close(precision, tolerance, fixture_case):
    from vggt_ros.model import VGGT
    from vggt_ros.runtime.verify import relative_errors

    model = VGGT.from_pretrained(TINY)  # the pipeline converts its model to the precision
    with torch.no_grad():
        reference = model(fixture_case["images"])
    errors = relative_errors(
        Pipeline.from_model(model, device="cpu", precision=precision)(fixture_case["images"]), reference
    )
    assert all(0 < e < 100 * tolerance for e in errors.values()), errors


def test_frame_count_outside_the_profile_says_how_to_rebuild(exported, fixture_case):
    pipeline = Pipeline.from_engine_dir(exported, backend="onnxruntime")
    with pytest.raises(FrameCountError, match="--max-frames"):
        pipeline(torch.rand(6, 3, *fixture_case["images"].shape[-2:]))


def test_image_size_other_than_the_export_says_how_to_reexport(exported):
    pipeline = Pipeline.from_engine_dir(exported, backend="onnxruntime")
    with pytest.raises(ValueError, match="re-export with --height 28 --width 28"):
        pipeline(torch.rand(2, 3, 28, 28))


def test_missing_export_gives_the_command_to_run(tmp_path):
    with pytest.raises(ValueError, match="export the ONNX graphs first"):
        create_pipeline(RuntimeConfig(backend="onnxruntime", engine_dir=str(tmp_path)))


def test_tensorrt_without_tensorrt_names_the_alternatives(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt -> ImportError, as on a machine without it
    with pytest.raises(BackendUnavailableError, match="the 'onnxruntime' \\(CPU\\) or the 'torch' backend"):
        Pipeline.from_engine_dir(exported, backend="tensorrt")
    with pytest.raises(BackendUnavailableError, match="the 'onnxruntime' \\(CPU\\) or the 'torch' backend"):
        create_pipeline(RuntimeConfig(backend="tensorrt", engine_dir=str(exported)))


def test_cuda_without_a_gpu_names_the_fix(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(BackendUnavailableError, match="device cpu"):
        create_pipeline(RuntimeConfig(backend="torch", device="cuda", weights=str(TINY)))


def test_build_engines_is_idempotent_and_verifies(tmp_path, caplog):
    args = [
        "--weights",
        str(TINY),
        "--height",
        "28",
        "--width",
        "42",
        "--max-frames",
        "3",
        "--out",
        str(tmp_path),
        "--backend",
        "onnxruntime",
        "--verify",
    ]
    with caplog.at_level("INFO"):
        assert build_engines_main(args) == 0
    first = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}
    assert set(first) >= {f"{n}.onnx" for n in STAGE_NAMES} | {"manifest.json"}
    assert any("relative error vs torch FP32" in r.message and "depth" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("INFO"):
        assert build_engines_main(args) == 0
    assert any("up to date" in r.message for r in caplog.records)
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == first
    with caplog.at_level("INFO"):
        assert build_engines_main(args[:-1] + ["--max-frames", "4"]) == 0  # argparse: the last --max-frames wins
    assert any("frame range" in r.message for r in caplog.records)
