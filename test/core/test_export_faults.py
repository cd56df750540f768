# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Damaged, edited and interrupted engine folders: every tool refuses a folder whose manifest.json does not describe
its graphs, with an error naming the field or the file and saying to re-export, never a traceback.

Every case starts from a real export of the tiny model (28x28, 1 to 2 frames), copied per test."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from conftest import TINY
from vggt_ros.export.cli import build_engines_main
from vggt_ros.export.onnx_export import export_onnx
from vggt_ros.runtime import Pipeline
from vggt_ros.runtime.io_contract import FramesProfile, ManifestError, TensorContractError

pytestmark = pytest.mark.slow  # each module exports the tiny model once (about 5 s)

SIZE = (28, 28)
FRAMES = FramesProfile(1, 1, 2)


@pytest.fixture(scope="module")
def pristine(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("pristine")
    export_onnx(tiny_model, out, SIZE, FRAMES)
    return out


@pytest.fixture
def export(pristine, tmp_path):
    """A fresh copy of the tiny export to damage."""
    return shutil.copytree(pristine, tmp_path / "export")


def _edit_manifest(folder, edit):
    manifest = json.loads((folder / "manifest.json").read_text())
    edited = edit(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest if edited is None else edited))


def _set(*path_and_value):
    *path, key, value = path_and_value

    def edit(manifest):
        target = manifest
        for step in path:
            target = target[step]
        target[key] = value

    return edit


@pytest.mark.parametrize(
    "edit, message",
    [
        (_set("components", []), r"'components' must be a JSON object, got \[\]"),
        (_set("exporter", ["torch"]), r"'exporter' must be a JSON object"),
        (_set("exporter", "torch", 2), r"'torch' of 'exporter' must be a string, got 2"),
        (_set("height", "abc"), r"'height' of the top level must be an integer, got 'abc'"),
        (_set("height", 28.9), r"'height' of the top level must be an integer, got 28.9"),
        (_set("frames", [1, 1, 2]), r"'frames' must be a JSON object"),
        (_set("frames", "min", "x"), r"'min' of 'frames' must be an integer, got 'x'"),
        (_set("components", "dinov2", "inputs", 5), r"'inputs' of component 'dinov2' must be a list, got 5"),
        (_set("components", "dinov2", "inputs", 0, 7), r"a tensor of component 'dinov2' must be a JSON object"),
        (_set("components", "dinov2", "inputs", 0, "shape", "S"), r"'shape' of tensor 'images' .* must be a list"),
        (_set("components", "aggregator", "outputs", 0, "name", "tokens_x"), r"must be named tokens_<layer>"),
        (_set("components", "dinov2", "file", "."), r"'file' of component 'dinov2' must be a file name"),
        (_set("components", "dinov2", "file", "../dinov2.onnx"), r"must be a file name in the export folder"),
        (_set("components", "extra", {"file": "x.onnx", "inputs": [], "outputs": []}), "needs at least one input"),
        (lambda m: [m], r"the top level must be a JSON object"),
        (_set("quantization", "int8"), r"'quantization' must be a JSON object, got 'int8'"),
    ],
)
def test_a_malformed_manifest_field_is_named(export, edit, message):
    _edit_manifest(export, edit)
    with pytest.raises(ManifestError, match=message) as error:
        Pipeline.from_engine_dir(export, backend="onnxruntime")
    assert str(error.value).startswith("manifest.json: ") and str(error.value).endswith("; re-export the model")


def test_an_unknown_component_is_refused(export):
    _edit_manifest(export, lambda m: m["components"].update(extra=m["components"]["dinov2"]))
    with pytest.raises(ManifestError, match=r"components \['extra'\] are unknown.*re-export the model"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda path: path.write_bytes(b"\xff\xfe{}"), "cannot be read .*'utf-8' codec can't decode"),
        (lambda path: (path.unlink(), path.mkdir()), "cannot be read .*Is a directory"),
        (lambda path: path.write_text("{oops"), "is not valid JSON"),
    ],
)
def test_an_unreadable_manifest_is_a_manifest_error(export, damage, message):
    damage(export / "manifest.json")
    with pytest.raises(ManifestError, match=f"manifest.json {message}.*re-export the model"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


def test_a_graph_onnxruntime_cannot_parse_is_named(export):
    graph = export / "aggregator.onnx"
    size = graph.stat().st_size
    graph.write_bytes(b"\0" * size)  # same size, no protobuf
    with pytest.raises(ManifestError, match=r"ONNX Runtime cannot load .*aggregator\.onnx .*re-export the model"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            _set("components", "aggregator", "outputs", 0, "name", "tokens_5"),
            r"aggregator\.onnx does not match manifest\.json: the graph has no output 'tokens_5'; "
            r"its output 'tokens_4' is not in the manifest",
        ),
        (
            _set("components", "dinov2", "inputs", 0, "dtype", "float16"),
            r"dinov2\.onnx does not match manifest\.json: input 'images' is float32 in the graph, float16 in the",
        ),
        (
            _set("components", "dinov2", "inputs", 0, "shape", ["S", 3, 42, 28]),
            r"dinov2\.onnx does not match manifest\.json: input 'images' has shape \['S', 3, 28, 28\] in the graph, "
            r"\['S', 3, 42, 28\] in the manifest",
        ),
        (
            _set("components", "camera_head", "outputs", 1, "shape", ["S", 4, 9]),
            r"camera_head\.onnx does not match manifest\.json: output 'pose_enc_list' has shape \[4, 'S', 9\]",
        ),
    ],
)
def test_graph_inputs_and_outputs_are_checked_against_the_manifest(export, edit, message):
    _edit_manifest(export, edit)
    with pytest.raises(ManifestError, match=message + ".*re-export the model"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


def test_an_output_shape_the_graph_does_not_produce_is_named_when_it_runs(export):
    # The graph leaves depth's trailing dims symbolic, so only running it tells the manifest's shape is wrong.
    _edit_manifest(export, _set("components", "depth_head", "outputs", 0, "shape", ["S", 28, 28, 2]))
    pipeline = Pipeline.from_engine_dir(export, backend="onnxruntime")
    with pytest.raises(TensorContractError, match=r"depth_head\.onnx output 'depth' has shape \(1, 28, 28, 1\)"):
        pipeline(torch.rand(1, 3, *SIZE))


def test_build_engines_re_exports_over_a_malformed_manifest(export, caplog):
    _edit_manifest(export, _set("components", []))
    args = ["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(export)]
    with caplog.at_level("INFO"):
        assert build_engines_main([*args, "--backend", "onnxruntime"]) == 0
    assert any(
        "exporting ONNX" in r.message and "'components' must be a JSON object" in r.message for r in caplog.records
    )
    Pipeline.from_engine_dir(export, backend="onnxruntime")
