# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Engine cache keys, entry validation and metadata; the TensorRT backend's error when TensorRT is absent.

The "engine files" here are arbitrary bytes: the cache never interprets them, it only tracks and verifies them.
"""

import dataclasses
import hashlib
import json
import os
import subprocess
import sys
import types

import pytest
import torch
from test_io_contract import make_manifest_dict

from vggt_ros.files import write_bytes_atomically
from vggt_ros.runtime import tensorrt_backend
from vggt_ros.runtime.engine_cache import (
    EngineCacheKey,
    cache_entry,
    manifest_sha256,
    read_metadata,
    record_engine,
    validate_entry,
)
from vggt_ros.runtime.io_contract import (
    COMPONENT_NAMES,
    BackendUnavailableError,
    ComponentSpec,
    ExportManifest,
    FramesProfile,
    ManifestError,
)

BASE_KEY = EngineCacheKey(
    weights_sha256="ab" * 32,
    manifest_sha256="cd" * 32,
    height=518,
    width=392,
    frames_min=1,
    frames_opt=4,
    frames_max=8,
    precision="fp16",
    tensorrt_version="10.3.0",
    compute_capability=(8, 7),
)

CHANGED_FIELDS = {
    "weights_sha256": "ef" * 32,
    "manifest_sha256": "01" * 32,
    "height": 350,
    "width": 518,
    "frames_min": 2,
    "frames_opt": 5,
    "frames_max": 16,
    "precision": "fp32",
    "tensorrt_version": "10.4.0",
    "compute_capability": (8, 6),
}


def _fake_engine_bytes(component, size=4096):
    return (component.encode() * size)[:size]


def _populate_entry_with_fake_engines(entry):
    for index, component in enumerate(COMPONENT_NAMES):
        write_bytes_atomically(entry.engine_path(component), _fake_engine_bytes(component))
        record_engine(entry, component, build_seconds=10.0 + index)


# --- the key -----------------------------------------------------------------------------------------------------


def test_every_key_field_is_covered_by_the_change_table():
    assert set(CHANGED_FIELDS) == {f.name for f in dataclasses.fields(EngineCacheKey)}


@pytest.mark.parametrize("field", sorted(CHANGED_FIELDS))
def test_every_key_ingredient_changes_the_digest(field):
    changed = dataclasses.replace(BASE_KEY, **{field: CHANGED_FIELDS[field]})
    assert changed.digest() != BASE_KEY.digest()


def test_compute_capability_order_matters():
    assert dataclasses.replace(BASE_KEY, compute_capability=(7, 8)).digest() != BASE_KEY.digest()


def test_equal_keys_give_equal_digests_and_round_trip():
    assert EngineCacheKey.from_dict(BASE_KEY.to_dict()) == BASE_KEY
    assert EngineCacheKey.from_dict(json.loads(json.dumps(BASE_KEY.to_dict()))).digest() == BASE_KEY.digest()


def test_digest_is_identical_across_processes_with_different_hash_seeds():
    program = (
        "from vggt_ros.runtime.engine_cache import EngineCacheKey; import json, sys; "
        "print(EngineCacheKey.from_dict(json.loads(sys.argv[1])).digest())"
    )
    digests = set()
    for seed in ("0", "1"):  # 0 disables randomisation; 1 is a different seed
        result = subprocess.run(
            [sys.executable, "-c", program, json.dumps(BASE_KEY.to_dict())],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(result.stdout.strip())
    assert digests == {BASE_KEY.digest()}


@pytest.mark.parametrize("precision", ["int4", "bf16", "w4a16", "INT8", ""])
def test_a_precision_tensorrt_does_not_build_is_rejected(precision):
    with pytest.raises(
        ValueError, match=rf"precision must be one of \('fp16', 'fp32', 'int8', 'fp8'\), got '{precision}'"
    ):
        dataclasses.replace(BASE_KEY, precision=precision)


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
def test_a_quantized_export_has_keys_of_its_scheme_only(scheme):
    quantized = make_manifest_dict(height=518, width=392)
    quantized["quantization"] = {"scheme": scheme, "plan_sha256": "0" * 64}
    manifest = ExportManifest.from_manifest(quantized)
    key = EngineCacheKey.for_export(manifest, FramesProfile(1, 2, 6), scheme, "10.3.0", (8, 9))
    assert key.precision == scheme and key.digest() != dataclasses.replace(key, precision="fp16").digest()
    other = "fp8" if scheme == "int8" else "int8"
    with pytest.raises(ValueError, match=f"precision '{other}' builds an export quantized for it; this export is q"):
        EngineCacheKey.for_export(manifest, FramesProfile(1, 2, 6), other, "10.3.0", (8, 9))
    unquantized = ExportManifest.from_manifest(make_manifest_dict(height=518, width=392))
    with pytest.raises(ValueError, match="this export is not quantized"):
        EngineCacheKey.for_export(unquantized, FramesProfile(1, 2, 6), scheme, "10.3.0", (8, 9))


def test_key_for_an_export_follows_the_manifest_and_frames():
    manifest = ExportManifest.from_manifest(make_manifest_dict(height=518, width=392))
    key = EngineCacheKey.for_export(manifest, FramesProfile(1, 2, 6), "fp16", "10.3.0", (8, 7))
    assert (key.height, key.width) == (518, 392)
    assert (key.frames_min, key.frames_opt, key.frames_max) == (1, 2, 6)
    assert key.weights_sha256 == manifest.weights_sha256
    assert key.manifest_sha256 == manifest_sha256(manifest)
    re_exported = make_manifest_dict(height=518, width=392)
    re_exported["exporter"]["torch"] = "2.14.0"
    other = EngineCacheKey.for_export(
        ExportManifest.from_manifest(re_exported), FramesProfile(1, 2, 6), "fp16", "10.3.0", (8, 7)
    )
    assert other.manifest_sha256 != key.manifest_sha256 and other.digest() != key.digest()


# --- entries ------------------------------------------------------------------------------------------------------


def test_entry_layout(tmp_path):
    entry = cache_entry(tmp_path / "engines", BASE_KEY)
    assert entry.root == tmp_path / "engines" / BASE_KEY.digest()
    assert entry.engine_path("dinov2") == entry.root / "dinov2.engine"
    assert entry.metadata_path == entry.root / "metadata.json"
    # The timing cache depends only on the TensorRT version and GPU, so rebuilds for other frame ranges share it.
    other_frames = cache_entry(tmp_path / "engines", dataclasses.replace(BASE_KEY, frames_max=16))
    other_gpu = cache_entry(tmp_path / "engines", dataclasses.replace(BASE_KEY, compute_capability=(8, 9)))
    assert other_frames.root != entry.root and other_frames.timing_cache_path == entry.timing_cache_path
    assert other_gpu.timing_cache_path != entry.timing_cache_path
    assert entry.timing_cache_path.parent == tmp_path / "engines"


def test_empty_cache_needs_every_engine_built(tmp_path):
    reasons = validate_entry(cache_entry(tmp_path, BASE_KEY), COMPONENT_NAMES)
    assert list(reasons) == list(COMPONENT_NAMES)
    assert all(reason.startswith("no cached engine") for reason in reasons.values())


def test_fully_recorded_entry_validates_and_records_files(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    assert validate_entry(entry, COMPONENT_NAMES) == dict.fromkeys(COMPONENT_NAMES)
    metadata = read_metadata(entry)
    assert metadata["key"] == BASE_KEY.to_dict()
    assert metadata["timing_cache"] == entry.timing_cache_path.name
    aggregator = metadata["engines"]["aggregator"]
    expected = _fake_engine_bytes("aggregator")
    assert aggregator["sha256"] == hashlib.sha256(expected).hexdigest()
    assert aggregator["size"] == len(expected)
    assert aggregator["file"] == "aggregator.engine"
    assert aggregator["build_seconds"] == 11.0


def test_truncated_engine_is_detected(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    path = entry.engine_path("depth_head")
    path.write_bytes(path.read_bytes()[:1000])
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert "is 1000 bytes, expected 4096 (truncated or corrupt)" in reasons["depth_head"]
    assert [name for name, reason in reasons.items() if reason] == ["depth_head"]


def test_corrupted_engine_of_the_same_size_is_detected(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    path = entry.engine_path("camera_head")
    data = bytearray(path.read_bytes())
    data[2048] ^= 0xFF
    path.write_bytes(bytes(data))
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert reasons["camera_head"].endswith("does not match its recorded sha256 (corrupt)")
    assert [name for name, reason in reasons.items() if reason] == ["camera_head"]


def test_missing_engine_file_is_detected(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    entry.engine_path("dinov2").unlink()
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert reasons["dinov2"] == f"engine file {entry.engine_path('dinov2')} is missing"


def test_engine_written_but_never_recorded_is_rebuilt(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    metadata = read_metadata(entry)
    del metadata["engines"]["point_head"]  # as if the build was interrupted before recording
    entry.metadata_path.write_text(json.dumps(metadata))
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert "build never finished" in reasons["point_head"]
    assert [name for name, reason in reasons.items() if reason] == ["point_head"]


def test_stale_metadata_is_detected_and_replaced_on_rebuild(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    metadata = read_metadata(entry)
    metadata["key"]["tensorrt_version"] = "10.0.1"
    entry.metadata_path.write_text(json.dumps(metadata))
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert set(reasons.values()) == {"stale cache metadata, built for tensorrt_version='10.0.1' (now '10.3.0')"}
    record_engine(entry, "dinov2", build_seconds=1.0)
    assert read_metadata(entry)["key"] == BASE_KEY.to_dict()
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert reasons["dinov2"] is None and "build never finished" in reasons["aggregator"]


def test_unreadable_metadata_is_detected(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    entry.metadata_path.write_text('{"format": 1, "key": ')
    reasons = validate_entry(entry, COMPONENT_NAMES)
    assert all(reason.startswith("unreadable cache metadata") for reason in reasons.values())


def test_metadata_of_another_format_is_stale(tmp_path):
    entry = cache_entry(tmp_path, BASE_KEY)
    _populate_entry_with_fake_engines(entry)
    metadata = read_metadata(entry)
    metadata["format"] = 0
    entry.metadata_path.write_text(json.dumps(metadata))
    assert set(validate_entry(entry, ["dinov2"]).values()) == {"cache metadata format 0 is not 1"}


# --- the TensorRT backend without TensorRT ----------------------------------------------------------------------------

_SPEC = ComponentSpec.from_manifest("dinov2", make_manifest_dict()["components"]["dinov2"])


@pytest.fixture
def tensorrt_not_installed(monkeypatch):
    # A None entry in sys.modules makes `import tensorrt` raise ImportError, whether or not it is installed.
    monkeypatch.setitem(sys.modules, "tensorrt", None)


@pytest.mark.parametrize(
    "ask_for_tensorrt",
    [
        lambda tmp: tensorrt_backend.load_or_build_engines(tmp / "onnx", tmp / "engines"),
        lambda tmp: tensorrt_backend.build_engine(tmp / "dinov2.onnx", tmp / "x.engine", _SPEC, FramesProfile(1, 1, 2)),
        lambda tmp: tensorrt_backend.TensorRTComponent(tmp / "dinov2.engine", _SPEC, FramesProfile(1, 1, 2)),
    ],
)
def test_tensorrt_backend_without_tensorrt_names_the_alternatives(tensorrt_not_installed, tmp_path, ask_for_tensorrt):
    with pytest.raises(BackendUnavailableError, match="needs the 'tensorrt' Python package") as info:
        ask_for_tensorrt(tmp_path)
    assert "the 'onnxruntime' (CPU) or the 'torch' backend" in str(info.value)
    assert not (tmp_path / "engines").exists()


def test_tensorrt_older_than_10_is_refused(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="8.6.1"))  # FakeOldTensorRTModule
    with pytest.raises(BackendUnavailableError, match=r"TensorRT 8\.6\.1 is too old.*the 'onnxruntime' \(CPU\)"):
        tensorrt_backend.import_tensorrt()


def test_tensorrt_backend_without_cuda_names_the_alternatives(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    message = r"needs a CUDA GPU.*the 'onnxruntime' \(CPU\) or the 'torch' backend"
    with pytest.raises(BackendUnavailableError, match=message):
        tensorrt_backend._require_cuda()


# --- the TensorRT backend up to the build, with a stand-in tensorrt module --------------------------------------------


class _BuildReached(Exception):
    pass


@pytest.fixture
def stand_in_tensorrt(monkeypatch):
    """TensorRT 10.3 on a compute capability 8.9 GPU as far as load_or_build_engines asks before building; the calls
    that reach build_engine are recorded and stopped there (nothing of TensorRT runs)."""
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda *device: (8, 9))
    builds = []

    def build_engine(onnx_path, engine_path, spec, frames_profile, precision, **options):
        builds.append((onnx_path.name, precision))
        raise _BuildReached

    monkeypatch.setattr(tensorrt_backend, "build_engine", build_engine)
    return builds


def _write_export(folder, manifest):
    """``manifest`` with stand-in graph files, each recorded with its size and SHA-256."""
    folder.mkdir()
    manifest["files"] = {}
    for component in manifest["components"].values():
        data = component["file"].encode() * 100
        (folder / component["file"]).write_bytes(data)
        manifest["files"][component["file"]] = {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


@pytest.mark.parametrize("scheme", ["int8", "fp8"])
def test_tensorrt_engines_of_a_quantized_export_are_built_at_its_scheme(stand_in_tensorrt, tmp_path, scheme):
    from vggt_ros.runtime import Pipeline

    quantized = make_manifest_dict()
    quantized["quantization"] = {"scheme": scheme, "stages": ["dinov2", "aggregator"], "plan_sha256": "0" * 64}
    export = _write_export(tmp_path / "export", quantized)
    with pytest.raises(_BuildReached):
        Pipeline.from_engine_dir(export, backend="tensorrt", precision=scheme)
    assert stand_in_tensorrt == [("dinov2.onnx", scheme)]


def test_tensorrt_builds_no_engine_from_a_graph_changed_since_the_export(stand_in_tensorrt, tmp_path):
    export = _write_export(tmp_path / "export", make_manifest_dict())
    graph = export / "depth_head.onnx"
    graph.write_bytes(graph.read_bytes()[::-1])  # same size, other bytes
    with pytest.raises(ManifestError, match=r"depth_head\.onnx is not the file manifest\.json records"):
        tensorrt_backend.load_or_build_engines(export, tmp_path / "engines", precision="fp16")
    assert stand_in_tensorrt == []


def test_built_engines_run_without_their_onnx_graphs(stand_in_tensorrt, tmp_path, monkeypatch):
    from vggt_ros.runtime import Pipeline

    export = _write_export(tmp_path / "export", make_manifest_dict())
    manifest = ExportManifest.load(export)
    entry = cache_entry(export, EngineCacheKey.for_export(manifest, manifest.frames, "fp16", "10.3.0", (8, 9)))
    _populate_entry_with_fake_engines(entry)
    for component in manifest.components.values():
        (export / component.file).unlink()  # deleted to save room once the engines were built
    loaded = []
    monkeypatch.setattr(tensorrt_backend, "TensorRTComponent", lambda path, spec, frames: loaded.append(path.name))
    pipeline = Pipeline.from_engine_dir(export, backend="tensorrt")
    assert loaded == [f"{name}.engine" for name in COMPONENT_NAMES] and stand_in_tensorrt == []
    assert pipeline.image_hw == (28, 42)


def test_an_engine_that_needs_building_where_building_is_off_names_the_build_command(monkeypatch, tmp_path):
    """The node loads engines without building them (a build takes minutes): the error said "build the engines
    first or allow building", without the command that builds them."""
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.3.0"))  # FakeTensorRTModule
    monkeypatch.setattr(tensorrt_backend, "_require_cuda", lambda: None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda: (8, 9))
    export = tmp_path / "export"
    export.mkdir()
    (export / "manifest.json").write_text(json.dumps(make_manifest_dict()))
    with pytest.raises(RuntimeError) as err:
        tensorrt_backend.load_or_build_engines(export, export, precision="fp16", build_missing=False)
    assert "needs rebuilding (no cached engine" in str(err.value)
    assert (
        "build the engines on this machine first: vggt-ros-build-engines --backend tensorrt --precision fp16 "
        f"--out {export}" in str(err.value)
    )
