# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Damaged, edited and interrupted engine folders: every tool refuses a folder whose manifest.json does not describe
its graphs, with an error naming the field or the file and saying to re-export, never a traceback.

Every case starts from a real export of the tiny model (28x28, 1 to 2 frames), copied per test."""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path

import pytest
import torch

from conftest import TINY
from support.small_filesystem import fill, small_filesystem
from vggt_ros.export import cli, onnx_export
from vggt_ros.export.cli import build_engines_entry, build_engines_main, export_entry, export_is_current, export_main
from vggt_ros.export.onnx_export import export_onnx
from vggt_ros.files import SAVE_RECORD
from vggt_ros.model import VGGT
from vggt_ros.model.stages import STAGE_NAMES
from vggt_ros.model.weights import CheckpointError
from vggt_ros.runtime import Pipeline
from vggt_ros.runtime.engine_cache import EngineCacheKey
from vggt_ros.runtime.io_contract import ExportManifest, FramesProfile, ManifestError, TensorContractError
from vggt_ros.runtime.weights_source import load_model

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


@pytest.fixture(scope="module")
def other_weights(tiny_model):
    """The tiny model with other weights (same config)."""
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    return model


def _contents(folder):
    return {path.name: path.read_bytes() for path in folder.iterdir()}


def _is_current(folder, model):
    return export_is_current(folder, model, SIZE, FRAMES, 18)


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
    graph.write_bytes(b"\0" * size)  # same size, no protobuf: its SHA-256 tells first
    with pytest.raises(ManifestError, match=r"aggregator\.onnx is not the file manifest\.json records \(its SHA-256"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")
    # An export written before the manifest recorded its files: ONNX Runtime's parser is the one to find it.
    manifest = json.loads((export / "manifest.json").read_text())
    del manifest["files"]
    (export / "manifest.json").write_text(json.dumps(manifest))
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


# --- an export is whole or not at all ---------------------------------------------------------------------------------


def test_the_manifest_records_every_file_and_the_model_config(export, tiny_model):
    manifest = json.loads((export / "manifest.json").read_text())
    on_disk = {p.name: p.read_bytes() for p in export.iterdir() if p.name not in ("manifest.json", SAVE_RECORD)}
    assert manifest["files"] == {
        name: {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()} for name, data in on_disk.items()
    }
    assert manifest["model_config"] == json.loads(json.dumps(asdict(tiny_model.config)))
    assert manifest["exporter"]["vggt_ros"] not in ("", None)
    assert _is_current(export, tiny_model) is None


def test_an_export_given_as_the_weights_names_the_option_that_reads_it(pristine, tiny_model, tmp_path):
    """It said "must hold exactly one VGGT *.safetensors file or a model.pt; found no weight files"."""
    with pytest.raises(CheckpointError) as err:
        load_model(pristine)
    assert str(err.value).startswith(
        f"{pristine} is an engine export (vggt-ros-build-engines), not VGGT weights: run it with backend onnxruntime "
        "or tensorrt and its folder as the engine folder"
    )
    # A graph of it: not "a pickle that holds more than tensors" (its reading as weights), which it never was.
    with pytest.raises(CheckpointError) as err:
        load_model(pristine / "aggregator.onnx")
    assert str(err.value).startswith(f"{pristine / 'aggregator.onnx'} is an engine export") and "pickle" not in str(
        err.value
    )
    # Engines exported into the weights' own folder: the weights still load (the first export's layout).
    weights = shutil.copytree(TINY, tmp_path / "weights")
    export_onnx(tiny_model, weights, SIZE, FRAMES)
    assert isinstance(load_model(weights), VGGT)


def test_an_interrupted_re_export_leaves_the_earlier_export_as_it_was(export, tiny_model, other_weights, monkeypatch):
    before = _contents(export)
    export_stage = onnx_export._export_stage

    def interrupted_after_the_aggregator(module, args, in_names, out_names, path, *rest):
        if path.name == "camera_head.onnx":
            raise KeyboardInterrupt  # Ctrl-C with dinov2.onnx and aggregator.onnx of the new weights written
        export_stage(module, args, in_names, out_names, path, *rest)

    monkeypatch.setattr(onnx_export, "_export_stage", interrupted_after_the_aggregator)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(other_weights, export, SIZE, FRAMES)
    assert _contents(export) == before  # no graph of the new weights, no staging folder left
    assert _is_current(export, tiny_model) is None
    assert _is_current(export, other_weights) == "existing export differs: weights"
    # An --out without an export: the manifest's error told the user to run build-engines, the command running.
    assert _is_current(export.parent / "new", tiny_model) == "no export there yet"


def test_an_export_interrupted_while_its_graphs_are_moved_in_leaves_the_earlier_export(
    export, tiny_model, other_weights, monkeypatch
):
    """It left two graphs of the new weights and no manifest: an export no tool took, and the earlier one lost."""
    before = _contents(export)
    replace, moved = os.replace, []

    def interrupted_after_two_graphs(source, target):  # a test double of os.replace: Ctrl-C during the swap
        if Path(target).parent == export and Path(target).suffix == ".onnx" and None not in moved:
            if len(moved) == 2:
                moved.append(None)
                raise KeyboardInterrupt
            moved.append(Path(target).name)
        replace(source, target)

    monkeypatch.setattr(os, "replace", interrupted_after_two_graphs)
    with pytest.raises(KeyboardInterrupt):
        export_onnx(other_weights, export, SIZE, FRAMES)
    monkeypatch.undo()
    assert _contents(export) == before
    assert moved == ["aggregator.onnx", "camera_head.onnx", None]  # two graphs were swapped in, then put back
    assert _is_current(export, tiny_model) is None
    Pipeline.from_engine_dir(export, backend="onnxruntime")


def test_a_graph_changed_after_the_export_is_not_up_to_date(export, tiny_model):
    graph = export / "aggregator.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size: only its SHA-256 tells
    graph.write_bytes(bytes(data))
    assert f"{graph} is not the file manifest.json records (its SHA-256 differs)" in _is_current(export, tiny_model)
    # ONNX Runtime ran it, without a word: a graph of another export of the same size gave depth 25-34 % off.
    with pytest.raises(ManifestError, match=r"\(its SHA-256 differs\): the export in .* is damaged or incomplete"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")
    graph.write_bytes(bytes(data[:1000]))
    message = f"{graph} is 1000 bytes where manifest.json records {len(data)} (truncated or replaced)"
    assert message in _is_current(export, tiny_model)
    with pytest.raises(ManifestError, match=r"\(truncated or replaced\): the export in .* is damaged or incomplete"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


def test_build_engines_re_exports_a_truncated_graph(export, caplog):
    (export / "aggregator.onnx").write_bytes((export / "aggregator.onnx").read_bytes()[:1000])
    args = ["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(export)]
    with caplog.at_level("INFO"):
        assert build_engines_main([*args, "--backend", "onnxruntime"]) == 0
    assert any("exporting ONNX" in r.message and "aggregator.onnx is 1000 bytes" in r.message for r in caplog.records)
    ExportManifest.load(export).check_files(export, contents=True)


def test_the_same_weights_under_another_config_are_another_export(export, tiny_model, tmp_path):
    config = json.loads((TINY / "config.json").read_text())
    config["aggregator"]["rope_freq"] = 10
    config["aggregator"]["image_mean"] = [0.0, 0.0, 0.0]
    folder = tmp_path / "other_config"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "state_dict.safetensors").symlink_to(TINY / "state_dict.safetensors")
    other_config = VGGT.from_pretrained(folder)
    assert onnx_export.state_dict_sha256(other_config) == onnx_export.state_dict_sha256(tiny_model)
    reason = _is_current(export, other_config)
    assert reason == "existing export differs: model config (aggregator.image_mean, aggregator.rope_freq)"

    other = export_onnx(other_config, tmp_path / "other", SIZE, FRAMES)
    keys = [
        EngineCacheKey.for_export(manifest, FRAMES, "fp16", "10.3.0", (8, 9)).digest()
        for manifest in (ExportManifest.load(export), other)
    ]
    assert keys[0] != keys[1]


def test_an_export_by_another_vggt_ros_version_is_not_up_to_date(export, tiny_model):
    _edit_manifest(export, _set("exporter", "vggt_ros", "0.0.1"))
    assert _is_current(export, tiny_model) == "existing export differs: vggt_ros version"


def test_an_export_from_before_the_files_were_recorded_still_runs(export, tiny_model):
    _edit_manifest(export, lambda m: {k: v for k, v in m.items() if k not in ("files", "model_config")})
    images = torch.rand(1, 3, *SIZE)
    with torch.no_grad():
        reference = tiny_model(images)["depth"]
    depth = Pipeline.from_engine_dir(export, backend="onnxruntime")(images)["depth"]
    assert torch.allclose(depth, reference, rtol=1e-4, atol=1e-5)
    assert _is_current(export, tiny_model) == (
        "existing export differs: model config (not recorded by the vggt_ros that exported it)"
    )


# --- the commands' --out ----------------------------------------------------------------------------------------------


def _command(entry, monkeypatch, capsys, *args):
    """Run a console entry point as the shell would; its exit status and stderr."""
    monkeypatch.setattr(sys, "argv", ["command", *args])
    with pytest.raises(SystemExit) as status:
        entry()
    return status.value.code, capsys.readouterr().err


@pytest.fixture
def model_loads(monkeypatch):
    """The models the command loads; loading one fails the test (AssertionError is no user-facing error)."""
    loaded = []

    def from_pretrained(*args, **kwargs):
        loaded.append(args)
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(cli.VGGT, "from_pretrained", from_pretrained)
    return loaded


@pytest.mark.parametrize("entry", [export_entry, build_engines_entry])
@pytest.mark.parametrize(
    "out, message",
    [
        ("a_file", r"--out {tmp}/a_file exists and is not a folder; choose a folder path"),
        ("a_file/sub", r"--out {tmp}/a_file/sub cannot be created: {tmp}/a_file is not a folder; choose another path"),
        (
            "/sys/kernel/vggt_out",
            r"--out /sys/kernel/vggt_out cannot be written \(it would be created in /sys/kernel\)",
        ),
        # They failed with "File exists" once the model had loaded (vggt-ros-quantize: after its whole search).
        ("dangling", r"--out {tmp}/dangling cannot be created: {tmp}/dangling is a link to {tmp}/gone, which does not"),
        ("dangling/sub", r"--out {tmp}/dangling/sub cannot be created: {tmp}/dangling is a link to {tmp}/gone"),
    ],
)
def test_an_out_that_cannot_be_written_is_refused_before_the_model_loads(
    entry, out, message, tmp_path, monkeypatch, capsys, model_loads
):
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    status, error = _command(entry, monkeypatch, capsys, "--weights", str(TINY), "--out", str(tmp_path / out))
    assert status == 1 and "Traceback" not in error
    assert re.fullmatch(f"error: {message.format(tmp=tmp_path)}.*\n", error)
    assert model_loads == []


def test_verify_frames_beyond_the_frame_range_are_refused_before_the_model_loads(
    tmp_path, monkeypatch, capsys, model_loads
):
    """They were refused after the export, which takes minutes for VGGT-1B."""
    args = ["--weights", str(TINY), "--out", str(tmp_path / "e"), "--backend", "onnxruntime", "--max-frames", "8"]
    status, error = _command(build_engines_entry, monkeypatch, capsys, *args, "--verify", "--verify-frames", "20")
    assert status == 1 and error.startswith(
        "error: --verify-frames 20 is outside the engines' frame range 1..8; pass --verify-frames 8 or less"
    )
    args += ["--min-frames", "3"]
    status, error = _command(build_engines_entry, monkeypatch, capsys, *args, "--verify", "--verify-frames", "2")
    assert status == 1 and "frame range 3..8; pass --verify-frames 3 or more (or export with --min-frames 2)" in error
    assert model_loads == [] and not (tmp_path / "e" / "manifest.json").exists()


def test_an_os_error_of_the_export_is_one_error_line_and_keeps_the_earlier_export(
    pristine, tmp_path, monkeypatch, capsys
):
    with small_filesystem(tmp_path / "disk", 6 * 1024) as disk:
        export = shutil.copytree(pristine, disk / "export")
        before = _contents(export)
        fill(disk, leave_bytes=1024 * 1024)  # room for some of the new graphs, not all
        args = ["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(export)]
        status, error = _command(export_entry, monkeypatch, capsys, *args)
        assert status == 1 and error.startswith(f"error: could not write {export}/") and error.count("\n") == 1
        assert "No space left on device" in error, error
        assert _contents(export) == before


@pytest.mark.parametrize("entry", [export_entry, build_engines_entry])
@pytest.mark.parametrize("own", ["manifest.json", "dinov2.onnx"])
def test_a_users_own_file_of_an_exports_name_is_refused_before_the_model_loads(
    entry, own, tmp_path, monkeypatch, capsys, model_loads
):
    """A manifest.json that did not read as an export's was taken for a damaged export and replaced, and a graph of
    another tool's in --out was overwritten."""
    out = tmp_path / "project"
    out.mkdir()
    (out / own).write_text("the user's own file\n")
    (out / "notes.txt").write_text("kept\n")
    before = _contents(out)
    arguments = ["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(out)]
    backend = ["--backend", "onnxruntime"] if entry is build_engines_entry else []
    status, error = _command(entry, monkeypatch, capsys, *arguments, *backend)
    assert status == 1 and error == (
        f"error: --out {out} holds {own}, which no earlier run recorded writing there, and this run writes entries of "
        "those names: move them, or choose another --out\n"
    )
    assert model_loads == [] and _contents(out) == before


def test_an_export_an_earlier_vggt_ros_wrote_without_a_record_is_replaced_whole(tiny_model, other_weights, tmp_path):
    """Its files are recorded as the export's (its manifest reads as one): a re-export replaces them, and removes the
    external data files the new graphs do not use, as it did before the record."""
    out = tmp_path / "export"
    export_onnx(other_weights, out, SIZE, FRAMES, external_data_threshold=0)
    (out / SAVE_RECORD).unlink()
    (out / "notes.txt").write_text("kept\n")
    assert (
        export_main(["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(out)])
        == 0
    )
    assert _is_current(out, tiny_model) is None
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [SAVE_RECORD, "manifest.json", "notes.txt", *(f"{stage}.onnx" for stage in STAGE_NAMES)]
    )


# --- quantized exports ------------------------------------------------------------------------------------------------


@pytest.fixture
def int8_export(export):
    """The tiny export marked as vggt-ros-quantize's int8 export (ONNX Runtime runs it all the same)."""
    _edit_manifest(export, _set("quantization", {"scheme": "int8", "stages": [], "plan_sha256": "0" * 64}))
    (export / "plan.json").write_text("{}")
    (export / "report.json").write_text("{}")
    return export


def test_the_plain_export_refuses_to_replace_a_quantized_export(int8_export, monkeypatch, capsys, model_loads):
    before = _contents(int8_export)
    status, error = _command(export_entry, monkeypatch, capsys, "--weights", str(TINY), "--out", str(int8_export))
    assert status == 1 and error == (
        f"error: --out {int8_export} holds an export quantized for int8 by vggt-ros-quantize (with its plan.json and "
        f"report.json), which this export would replace; choose another --out, or remove {int8_export} first to "
        "replace it\n"
    )
    assert _contents(int8_export) == before and model_loads == []


@pytest.mark.parametrize(
    "options, refused",
    [
        (["--height", "350"], "--height 350 (the export's: 28)"),
        (["--width", "42", "--max-frames", "8"], "--width 42 (the export's: 28), --max-frames 8 (the export's: 2)"),
        (["--min-frames", "2", "--opset", "19"], "--min-frames 2 (the export's: 1), --opset 19 (the export's: 18)"),
    ],
)
def test_build_engines_refuses_options_that_would_change_a_quantized_export(
    int8_export, options, refused, monkeypatch, capsys, model_loads
):
    args = ["--precision", "int8", "--backend", "onnxruntime", "--out", str(int8_export), *options]
    status, error = _command(build_engines_entry, monkeypatch, capsys, *args)
    assert status == 1 and error.startswith(
        f"error: {int8_export} holds an export quantized for int8 by vggt-ros-quantize, which {refused} cannot change"
    )
    assert "run `vggt-ros-quantize --scheme int8` again for another size or frame range" in error
    assert model_loads == []


@pytest.mark.parametrize("folder", ["int8", "float"])
def test_build_engines_for_a_quantized_export_that_is_not_there_names_a_folder_quantize_takes(
    folder, int8_export, pristine, monkeypatch, capsys, model_loads
):
    """It advised `vggt-ros-quantize --scheme fp8 --out <this folder>`, which refuses a folder holding an export."""
    out = int8_export if folder == "int8" else pristine
    args = ["--precision", "fp8", "--backend", "onnxruntime", "--out", str(out)]
    status, error = _command(build_engines_entry, monkeypatch, capsys, *args)
    assert status == 1 and error.startswith(
        f"error: --precision fp8 builds the engines of a quantized export, but {out}"
    )
    assert "run `vggt-ros-quantize --scheme fp8 --out <another folder>` first and pass that folder as --out" in error


def test_a_w4a16_export_given_as_engines_is_named_as_such(tmp_path):
    """It said to export ONNX graphs into the folder (`vggt-ros-build-engines --out`), which refuses it."""
    (tmp_path / "plan.json").write_text(json.dumps({"format": 1, "scheme": "fp8", "group_size": None, "blocks": {}}))
    with pytest.raises(ManifestError, match="manifest.json not found; export the ONNX graphs first"):
        ExportManifest.load(tmp_path)  # an fp8 run that stopped before its export: no torch backend to name
    (tmp_path / "plan.json").write_text(json.dumps({"format": 1, "scheme": "w4a16", "group_size": 16, "blocks": {}}))
    with pytest.raises(
        ManifestError,
        match="holds a vggt-ros-quantize w4a16 export, which has no ONNX graphs: run it"
        " on the torch backend with precision w4a16",
    ):
        ExportManifest.load(tmp_path)


def test_build_engines_builds_a_quantized_export_as_it_is(int8_export, caplog, model_loads):
    args = ["--precision", "int8", "--backend", "onnxruntime", "--out", str(int8_export), "--height", "28"]
    with caplog.at_level("INFO"):
        assert build_engines_main([*args, "--weights", str(TINY)]) == 0
    assert "--weights and --config are not used without --verify" in caplog.text
    assert "using the int8 export" in caplog.text and model_loads == []


def test_build_engines_verifies_a_quantized_export_at_its_own_size(int8_export, caplog):
    args = ["--precision", "int8", "--backend", "onnxruntime", "--out", str(int8_export), "--weights", str(TINY)]
    with caplog.at_level("INFO"):
        assert build_engines_main([*args, "--verify"]) == 0
    assert "relative error vs torch FP32 on 1 random images of 28x28" in caplog.text


def test_build_engines_verifies_a_quantized_export_only_against_the_weights_it_was_quantized_from(
    int8_export, tiny_model, tmp_path, monkeypatch, capsys
):
    """Other weights gave errors of 30 to 130 %, read as "int8 broke the model"."""
    from safetensors.torch import save_file

    other = {name: tensor.clone() for name, tensor in tiny_model.state_dict().items()}
    other["camera_head.embed_pose.weight"] += 0.5
    (tmp_path / "other").mkdir()
    save_file(other, str(tmp_path / "other" / "model.safetensors"))
    (tmp_path / "other" / "config.json").write_text((TINY / "config.json").read_text())
    args = ["--precision", "int8", "--backend", "onnxruntime", "--out", str(int8_export), "--verify"]
    status, error = _command(build_engines_entry, monkeypatch, capsys, *args, "--weights", str(tmp_path / "other"))
    assert status == 1 and f"are not the weights {int8_export} was quantized from" in error


# --- the patch size ---------------------------------------------------------------------------------------------------


def test_a_model_of_another_patch_size_exports_and_runs(tiny_model, tmp_path):
    model = VGGT(replace(tiny_model.config, patch_size=16))
    generator = torch.Generator().manual_seed(0)
    model.load_state_dict({k: 0.02 * torch.randn(v.shape, generator=generator) for k, v in model.state_dict().items()})
    manifest = export_onnx(model, tmp_path, (32, 48), FRAMES)
    assert ExportManifest.load(tmp_path).patch_size == manifest.patch_size == 16
    images = torch.rand(2, 3, 32, 48, generator=generator)
    with torch.no_grad():
        reference = model(images)
    outputs = Pipeline.from_engine_dir(tmp_path, backend="onnxruntime")(images)
    for key in ("depth", "world_points", "pose_enc"):
        assert torch.allclose(outputs[key], reference[key], rtol=1e-4, atol=1e-5), key


def test_a_size_edited_away_from_the_graphs_names_the_patch_count(export):
    def taller(manifest):
        manifest["height"] = 42
        manifest["components"]["dinov2"]["inputs"][0]["shape"] = ["S", 3, 42, 28]

    _edit_manifest(export, taller)
    message = "a 42x28 image has 6 patches of 14 pixels, but component 'dinov2' outputs 4 patch tokens"
    with pytest.raises(ManifestError, match=f"{message}: the size is not its graphs'; re-export the model"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


def test_a_malformed_patch_size_is_named(export):
    _edit_manifest(export, _set("model_config", "patch_size", "14"))
    with pytest.raises(ManifestError, match="'patch_size' of 'model_config' must be an integer, got '14'"):
        Pipeline.from_engine_dir(export, backend="onnxruntime")


def test_build_engines_without_tensorrt_fails_before_the_model_loads_or_anything_is_exported(
    tmp_path, monkeypatch, capsys, model_loads
):
    """The default backend is TensorRT: on a machine without it the tool exported every graph (minutes for
    VGGT-1B) and only then said so. This machine has no TensorRT module."""
    out = tmp_path / "engines"
    status, error = _command(build_engines_entry, monkeypatch, capsys, "--weights", str(TINY), "--out", str(out))
    assert status == 1 and "the TensorRT backend needs the 'tensorrt' Python package" in error
    assert "use the 'onnxruntime' (CPU) or the 'torch' backend instead" in error
    assert model_loads == [] and not out.exists()


@pytest.mark.parametrize("entry", [export_entry, build_engines_entry])
def test_a_w4a16_export_is_not_replaced_by_a_float_one(entry, tmp_path, monkeypatch, capsys, model_loads):
    """A w4a16 export has a plan.json and w4a16.safetensors but no manifest: float graphs and a manifest were
    written beside them."""
    out = tmp_path / "q4"
    out.mkdir()
    (out / "plan.json").write_text(json.dumps({"format": 1, "scheme": "w4a16", "group_size": 128, "blocks": {}}))
    (out / "w4a16.safetensors").write_bytes(b"packed weights")
    before = _contents(out)
    extra = ["--backend", "onnxruntime"] if entry is build_engines_entry else []
    status, error = _command(entry, monkeypatch, capsys, "--weights", str(TINY), "--out", str(out), *extra)
    assert status == 1 and "holds an export quantized for w4a16" in error
    if entry is build_engines_entry:  # its --precision takes no w4a16: the fix may not name it as one
        assert "it has no engines (the torch backend runs it, with precision w4a16)" in error
        assert "--precision w4a16" not in error
    assert _contents(out) == before and model_loads == []


# The command runs in its own process: without a handler, SIGTERM ends it (and would end pytest's).
_TERMINATED_DURING_THE_EXPORT = """
import os, signal, sys
from vggt_ros.export import onnx_export
export_stage = onnx_export._export_stage
def terminated_at_the_camera_head(module, args, in_names, out_names, path, *rest):  # a test double of `timeout`
    if path.name == "camera_head.onnx":
        os.kill(os.getpid(), signal.SIGTERM)
    export_stage(module, args, in_names, out_names, path, *rest)
onnx_export._export_stage = terminated_at_the_camera_head
from vggt_ros.export.cli import export_entry
sys.argv = ["python -m vggt_ros.export", *sys.argv[1:]]
export_entry()
"""


def test_sigterm_during_an_export_leaves_no_staging_folder_and_no_traceback(tmp_path):
    """SIGTERM's default action ended the process with the staging folder (gigabytes for VGGT-1B) left in --out."""
    import subprocess

    import vggt_ros

    out = tmp_path / "engines"
    arguments = ["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(out)]
    root = os.path.dirname(os.path.dirname(vggt_ros.__file__))  # the code under test, whichever checkout it is
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")])}
    finished = subprocess.run(
        [sys.executable, "-c", _TERMINATED_DURING_THE_EXPORT, *arguments], env=env, capture_output=True, timeout=300
    )
    error = finished.stderr.decode()
    assert finished.returncode == 143 and "Traceback" not in error, error[-2000:]
    stopped = "stopped; --out holds a whole export: the earlier one, or this one if it was already in place"
    assert f"SIGTERM: {stopped}" in error
    assert not out.exists() or [p.name for p in out.iterdir()] == []


@pytest.mark.parametrize(
    "entry, options, message",
    [
        (
            export_entry,
            ["--height", "0"],
            "--height must be a positive multiple of the patch size 14 (350 for VGGT-1B), got 0",
        ),
        # The exporter refused it once the model had loaded (a minute for VGGT-1B).
        (
            export_entry,
            ["--width", "29"],
            "--width must be a positive multiple of the patch size 14 (518 for VGGT-1B), got 29",
        ),
        (export_entry, ["--opt-frames", "0"], "frames profile must satisfy"),  # it fell back to the default
        (export_entry, ["--opset", "7"], "ONNX opset 7 is below 14"),
        # Above the exporter's newest it failed after tracing the model, with a 125-line graph dump.
        (export_entry, ["--opset", "99"], "ONNX opset 99 is above 23, the newest this torch exports"),
        (build_engines_entry, ["--backend", "onnxruntime", "--verify-frames", "0"], "--verify-frames must be 1"),
        # Never checked: TensorRT's builder would have been handed a negative workspace.
        (build_engines_entry, ["--workspace-gib", "-3"], "--workspace-gib must be a positive number of GiB, got -3.0"),
    ],
)
def test_export_options_are_checked_before_the_model_loads(
    entry, options, message, tmp_path, monkeypatch, capsys, model_loads
):
    arguments = ["--weights", str(TINY), "--height", "28", "--width", "28", "--out", str(tmp_path / "engines")]
    status, error = _command(entry, monkeypatch, capsys, *arguments, *options)
    assert status == 1 and message in error and "Traceback" not in error
    assert model_loads == []


@pytest.mark.parametrize("entry", [export_entry, build_engines_entry])
def test_an_empty_out_is_refused_at_parsing_not_taken_for_the_current_folder(entry, monkeypatch, capsys, model_loads):
    """--out "" (an unset shell variable) wrote the graphs into the current folder and logged /manifest.json."""
    status, error = _command(entry, monkeypatch, capsys, "--weights", str(TINY), "--out", "")
    assert status == 2 and "argument --out: is empty; give a path" in error
    assert model_loads == []


@pytest.mark.parametrize("min_frames, warned", [(1, False), (2, True)])
def test_engines_that_one_camera_cannot_use_are_named_at_the_export(min_frames, warned, tmp_path, caplog):
    """A one-camera session runs each new frame set through the engines alone: --min-frames 2 engines were exported
    without a word, and the session refused them at start-up."""
    out = tmp_path / "engines"
    arguments = ["--weights", str(TINY), "--height", "28", "--width", "28", "--max-frames", "2", "--out", str(out)]
    with caplog.at_level("WARNING", logger="vggt_ros.export"):
        assert export_main([*arguments, "--min-frames", str(min_frames)]) == 0
    assert ExportManifest.load(out).frames.min == min_frames
    expected = "--min-frames 2: these engines serve only sessions with at least 2 cameras"
    assert (expected in caplog.text) == warned, caplog.text
