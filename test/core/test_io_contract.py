# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The engine tensor contract: manifest parsing, dtype/shape/device checks, contiguity, frame range."""

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch

from vggt_ros.runtime.io_contract import (
    COMPONENT_NAMES,
    ExportManifest,
    FrameCountError,
    FramesProfile,
    ManifestError,
    TensorContractError,
    TensorSpec,
    check_inputs,
    check_tensor,
)

TOKEN_LAYERS = (4, 11, 17, 23)


def make_manifest_dict(height=28, width=42, embed_dim=8, frames=(1, 4, 8)):
    """A manifest as the exporter describes it, for an H x W export with embedding width C = embed_dim."""
    patches = (height // 14) * (width // 14)
    tokens = 5 + patches

    def tensor(name, *shape):
        return {"name": name, "shape": ["S", *shape], "dtype": "float32"}

    token_inputs = [tensor(f"tokens_{i}", tokens, 2 * embed_dim) for i in TOKEN_LAYERS]
    return {
        "format": 1,
        "height": height,
        "width": width,
        "frames": dict(zip(("min", "opt", "max"), frames)),
        "weights_sha256": "ab" * 32,
        "opset": 18,
        "exporter": {"torch": "2.13.0", "onnx": "1.18.0"},
        "components": {
            "dinov2": {
                "file": "dinov2.onnx",
                "inputs": [tensor("images", 3, height, width)],
                "outputs": [tensor("patch_tokens", patches, embed_dim)],
            },
            "aggregator": {
                "file": "aggregator.onnx",
                "inputs": [tensor("patch_tokens", patches, embed_dim)],
                "outputs": token_inputs,
            },
            "camera_head": {
                "file": "camera_head.onnx",
                "inputs": [token_inputs[-1]],
                "outputs": [tensor("pose_enc", 9), {"name": "pose_enc_list", "shape": [4, "S", 9], "dtype": "float32"}],
            },
            "depth_head": {
                "file": "depth_head.onnx",
                "inputs": token_inputs,
                "outputs": [tensor("depth", height, width, 1), tensor("depth_conf", height, width)],
            },
            "point_head": {
                "file": "point_head.onnx",
                "inputs": token_inputs,
                "outputs": [tensor("world_points", height, width, 3), tensor("world_points_conf", height, width)],
            },
        },
    }


@pytest.fixture
def manifest():
    return ExportManifest.from_manifest(make_manifest_dict())


def _tokens(frames, manifest, layers=TOKEN_LAYERS):
    spec = manifest.components["depth_head"].inputs[0]
    return {f"tokens_{i}": torch.randn(spec.concrete_shape(frames)) for i in layers}


# --- manifest --------------------------------------------------------------------------------------------------------


def test_manifest_parses_the_exporter_layout(manifest):
    assert (manifest.height, manifest.width) == (28, 42)
    assert manifest.frames == FramesProfile(1, 4, 8)
    assert set(manifest.components) == set(COMPONENT_NAMES)
    dinov2 = manifest.components["dinov2"]
    assert dinov2.file == "dinov2.onnx"
    assert dinov2.inputs == (TensorSpec("images", ("S", 3, 28, 42), "float32"),)
    assert dinov2.inputs[0].torch_dtype == torch.float32
    assert [t.name for t in manifest.components["aggregator"].outputs] == [f"tokens_{i}" for i in TOKEN_LAYERS]
    assert manifest.components["camera_head"].outputs[1].concrete_shape(5) == (4, 5, 9)
    # P = 5 + (28/14)*(42/14) = 11 tokens of width 2C = 16.
    assert manifest.components["depth_head"].inputs[0].concrete_shape(3) == (3, 11, 16)


def test_manifest_round_trips_to_the_same_dict():
    original = make_manifest_dict()
    assert ExportManifest.from_manifest(original).to_manifest() == original


def test_manifest_loads_from_folder(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps(make_manifest_dict(height=518, width=392)))
    loaded = ExportManifest.load(tmp_path)
    assert (loaded.height, loaded.width) == (518, 392)


def test_missing_or_invalid_manifest_file(tmp_path):
    # build-engines builds TensorRT engines by default, which a CPU machine refuses: the command names the backend
    with pytest.raises(
        ManifestError, match=r"not found; export the ONNX graphs first \(`vggt-ros-build-engines --backend onnxruntime"
    ):
        ExportManifest.load(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        ExportManifest.load(tmp_path)


def _broken(edit):
    manifest = copy.deepcopy(make_manifest_dict())
    edit(manifest)
    return manifest


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: m.update(format=2), "format 2 is not supported"),
        (lambda m: m.pop("frames"), "has no 'frames' field"),
        (lambda m: m["components"].pop("point_head"), r"components \['point_head'\] are missing"),
        (lambda m: m.update(height=30), "multiples of 14"),
        (lambda m: m["frames"].update(min=5), "1 <= min <= opt <= max"),
        (lambda m: m["components"]["dinov2"]["inputs"][0].update(dtype="float8"), "unsupported dtype 'float8'"),
        (lambda m: m["components"]["dinov2"]["inputs"][0].update(shape=["N", 3, 28, 42]), "positive ints or 'S'"),
        (lambda m: m["components"]["dinov2"]["inputs"][0].update(shape=["S", 0, 28, 42]), "positive ints or 'S'"),
        (lambda m: m["components"]["dinov2"]["outputs"].clear(), "at least one input and one output"),
        (lambda m: m["components"]["dinov2"].pop("file"), "component 'dinov2' has no 'file' field"),
    ],
)
def test_invalid_manifest_is_rejected_with_reason(edit, message):
    with pytest.raises(ManifestError, match=message):
        ExportManifest.from_manifest(_broken(edit))


def test_manifest_built_in_code_is_validated_too(manifest):
    with pytest.raises(ManifestError, match="multiples of 14, got 30x42"):
        dataclasses.replace(manifest, height=30)
    without_dinov2 = {name: spec for name, spec in manifest.components.items() if name != "dinov2"}
    with pytest.raises(ManifestError, match=r"components \['dinov2'\] are missing"):
        dataclasses.replace(manifest, components=without_dinov2)


# --- single tensors --------------------------------------------------------------------------------------------------

IMAGES = TensorSpec("images", ("S", 3, 28, 42), "float32")


def _row_major_strides(shape):
    strides, step = [], 1
    for dim in reversed(shape):
        strides.append(step)
        step *= dim
    return tuple(reversed(strides))


def test_matching_contiguous_tensor_is_passed_through_without_copy():
    images = torch.rand(2, 3, 28, 42)
    checked = check_tensor(IMAGES, images, frames=2)
    assert checked.data_ptr() == images.data_ptr()


def test_permuted_numpy_image_is_made_contiguous():
    hwc = np.random.default_rng(0).random((2, 28, 42, 3), dtype=np.float32)
    chw_view = torch.from_numpy(hwc).permute(0, 3, 1, 2)
    assert not chw_view.is_contiguous()
    checked = check_tensor(IMAGES, chw_view, frames=2)
    assert checked.stride() == _row_major_strides((2, 3, 28, 42))
    torch.testing.assert_close(checked, chw_view, rtol=0, atol=0)
    # The dense buffer holds channel planes, not the interleaved HWC bytes the view points at.
    np.testing.assert_array_equal(checked.numpy().reshape(-1)[: 28 * 42], hwc[0, :, :, 0].reshape(-1))


def test_channels_last_tensor_is_made_row_major():
    images = torch.rand(2, 3, 28, 42).to(memory_format=torch.channels_last)
    checked = check_tensor(IMAGES, images, frames=2)
    assert checked.stride() == _row_major_strides((2, 3, 28, 42))
    torch.testing.assert_close(checked, images, rtol=0, atol=0)


@pytest.mark.parametrize(
    "tensor, message",
    [
        (torch.rand(2, 3, 28, 42, dtype=torch.float64), r"'images': expected dtype float32, got torch.float64"),
        (torch.rand(2, 3, 42, 28), r"'images': expected shape \(2, 3, 28, 42\).*got \(2, 3, 42, 28\)"),
        (torch.rand(3, 3, 28, 42), r"'images': expected shape \(2, 3, 28, 42\) \(= \('S', 3, 28, 42\) with S=2\)"),
        (torch.rand(2, 3, 28), r"'images': expected shape \(2, 3, 28, 42\)"),
        (np.zeros((2, 3, 28, 42), dtype=np.float32), "'images': expected a torch.Tensor, got ndarray"),
    ],
)
def test_mismatching_tensor_is_rejected_naming_it(tensor, message):
    with pytest.raises(TensorContractError, match=message):
        check_tensor(IMAGES, tensor, frames=2)


def test_tensor_on_the_wrong_device_is_rejected():
    with pytest.raises(TensorContractError, match="'images': expected it on device cuda, got cpu"):
        check_tensor(IMAGES, torch.rand(2, 3, 28, 42), frames=2, device="cuda")
    with pytest.raises(TensorContractError, match="expected it on device cpu, got meta"):
        check_tensor(IMAGES, torch.empty(2, 3, 28, 42, device="meta"), frames=2, device="cpu")
    assert check_tensor(IMAGES, torch.rand(2, 3, 28, 42), frames=2, device="cpu").device.type == "cpu"


# --- component inputs and the frame range ---------------------------------------------------------------------------


def test_component_inputs_are_checked_and_returned_in_engine_order(manifest):
    head = manifest.components["depth_head"]
    inputs = _tokens(3, manifest)
    inputs["tokens_11"] = inputs["tokens_11"].transpose(1, 2).contiguous().transpose(1, 2)  # strided view
    checked, frames = check_inputs(head, dict(reversed(list(inputs.items()))), manifest.frames)
    assert frames == 3
    assert list(checked) == [f"tokens_{i}" for i in TOKEN_LAYERS]
    assert all(t.is_contiguous() for t in checked.values())
    torch.testing.assert_close(checked["tokens_11"], inputs["tokens_11"], rtol=0, atol=0)


def test_missing_and_unexpected_inputs_are_named(manifest):
    inputs = _tokens(2, manifest, layers=(4, 11, 17))
    inputs["tokens_22"] = inputs["tokens_4"]
    with pytest.raises(TensorContractError, match=r"missing \['tokens_23'\], unexpected \['tokens_22'\]"):
        check_inputs(manifest.components["point_head"], inputs, manifest.frames)


def test_inputs_disagreeing_on_frame_count_are_rejected(manifest):
    inputs = _tokens(3, manifest)
    inputs["tokens_17"] = inputs["tokens_17"][:2]
    with pytest.raises(TensorContractError, match=r"'tokens_17': expected shape \(3, 11, 16\).*got \(2, 11, 16\)"):
        check_inputs(manifest.components["depth_head"], inputs, manifest.frames)


@pytest.mark.parametrize("frames", [1, 4, 8])
def test_frame_counts_inside_the_profile_are_accepted(manifest, frames):
    images = torch.rand(frames, 3, 28, 42)
    checked, got = check_inputs(manifest.components["dinov2"], {"images": images}, manifest.frames)
    assert got == frames and checked["images"].shape == (frames, 3, 28, 42)


def test_too_many_frames_says_to_rebuild_with_larger_max_frames(manifest):
    message = r"9 frames is outside .*\[1, 8\]; rebuild the engines with a larger --max-frames \(at least 9\)"
    with pytest.raises(FrameCountError, match=message):
        check_inputs(manifest.components["dinov2"], {"images": torch.rand(9, 3, 28, 42)}, manifest.frames)


def test_too_few_frames_is_rejected():
    with pytest.raises(FrameCountError, match=r"1 frames is outside .*\[2, 8\]; pass at least 2 frames"):
        FramesProfile(2, 4, 8).check(1)
    with pytest.raises(FrameCountError, match="0 frames"):
        FramesProfile(1, 4, 8).check(0)
