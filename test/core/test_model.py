# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Our VGGT against the official implementation's outputs for the tiny fixture model, and its loading rules."""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import FIXTURES, TINY
from tolerances import INTRINSICS_REL, POSE_ABS, TOKENS_REL, assert_matches_reference, max_abs, relative_to_max
from vggt_ros.geometry import pose_encoding_to_extrinsics_intrinsics, unproject_depth
from vggt_ros.model import VGGT, CheckpointError, VGGTConfig
from vggt_ros.model.stages import build_stages, stage_io


@pytest.fixture(scope="module")
def outputs(tiny_model, fixture_case):
    with torch.no_grad():
        return tiny_model(fixture_case["images"])


def test_outputs_match_official(outputs, fixture_case):
    errors = assert_matches_reference(outputs, fixture_case)
    print(f"case {fixture_case['name']}:", {k: f"{v:.2e}" for k, v in errors.items()})


def test_output_shapes_follow_the_official_contract(outputs, fixture_case):
    _, s, _, h, w = fixture_case["images"].shape
    assert outputs["pose_enc"].shape == (1, s, 9)
    assert outputs["pose_enc_list"].shape == (4, 1, s, 9)
    assert outputs["depth"].shape == (1, s, h, w, 1)
    assert outputs["depth_conf"].shape == (1, s, h, w)
    assert outputs["world_points"].shape == (1, s, h, w, 3)
    assert outputs["world_points_conf"].shape == (1, s, h, w)


def test_tapped_aggregator_layers_match_official(tiny_model, fixture_case):
    images = fixture_case["images"][0]
    stages = build_stages(tiny_model, images.shape[-2:])
    with torch.no_grad():
        tapped = stages["aggregator"](stages["dinov2"](images))
    names = stage_io(tiny_model.config.tapped_layers)["aggregator"][1]
    assert names == ("tokens_4", "tokens_11", "tokens_17", "tokens_23")
    for layer, tokens in zip(tiny_model.config.tapped_layers, tapped):
        err = relative_to_max(tokens[None], fixture_case[f"aggregated_tokens_{layer}"])
        assert err <= TOKENS_REL, f"layer {layer}: {err:.2e}"


def test_cameras_and_unprojection_match_official(outputs, fixture_case):
    h, w = fixture_case["images"].shape[-2:]
    extrinsics, intrinsics = pose_encoding_to_extrinsics_intrinsics(outputs["pose_enc"], (h, w))
    assert max_abs(extrinsics, fixture_case["extrinsic"]) <= POSE_ABS
    rel = (intrinsics - fixture_case["intrinsic"]).abs() / fixture_case["intrinsic"].abs().clamp_min(1e-12)
    assert rel[fixture_case["intrinsic"] != 0].max() <= INTRINSICS_REL
    points = unproject_depth(outputs["depth"][0], extrinsics[0], intrinsics[0])[:, ::5, ::7]
    assert relative_to_max(points, fixture_case["point_map_from_depth"]) <= 1e-4  # end to end


@pytest.mark.slow
def test_batched_input_runs_each_sequence_independently(tiny_model, fixture_case):
    images = fixture_case["images"][0]
    with torch.no_grad():
        single = tiny_model(images)
        batched = tiny_model(torch.stack([images, images.flip(0)]))
    assert batched["depth"].shape[0] == 2 and batched["pose_enc_list"].shape[1] == 2
    assert torch.equal(batched["depth"][0], single["depth"][0])
    assert torch.equal(batched["pose_enc_list"][:, 0], single["pose_enc_list"][:, 0])


def test_full_config_state_dict_matches_checkpoint_manifest():
    manifest = json.loads((FIXTURES / "vggt_manifest_full.json").read_text())
    expected = {k: tuple(v["shape"]) for k, v in _manifest_tensors(manifest).items() if not k.startswith("track_head.")}
    with torch.device("meta"):
        model = VGGT(VGGTConfig())
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert all(p.is_meta for p in model.parameters())  # nothing was allocated
    assert sorted(set(expected) - set(ours)) == [] and sorted(set(ours) - set(expected)) == []
    assert ours == expected
    track_head = sum(e["numel"] for e in manifest["keys"] if e["key"].startswith("track_head."))
    assert sum(p.numel() for p in model.parameters()) == manifest["total_params"] - track_head


def _manifest_tensors(manifest: dict) -> dict:
    return {entry["key"]: entry for entry in manifest["keys"]}


def test_config_from_json_reads_the_fixture_schema():
    config = VGGTConfig.from_json(TINY / "config.json")
    assert config.embed_dim == 16 and config.encoder.depth == 2 and config.aggregator.depth == 24
    assert config.dpt_head.out_channels == (8, 12, 16, 20) and config.camera_head.num_heads == 2
    assert VGGTConfig().embed_dim == 1024 and VGGTConfig().dpt_head.features == 256


def test_strict_load_state_dict_of_fixture_weights():
    from safetensors.torch import load_file

    model = VGGT(VGGTConfig.from_json(TINY / "config.json"))
    model.load_state_dict(load_file(str(TINY / "state_dict.safetensors")))  # strict by default


def test_torch_file_loads_weights_only_and_track_head_is_skipped(tmp_path, tiny_model, caplog):
    state = dict(tiny_model.state_dict())
    state["track_head.tracker.dummy"] = torch.zeros(2)
    torch.save(state, tmp_path / "model.pt")
    (tmp_path / "config.json").write_text((TINY / "config.json").read_text())
    with caplog.at_level("INFO"):
        model = VGGT.from_pretrained(tmp_path)
    assert sum("track_head" in r.message for r in caplog.records) == 1
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()))


def test_pickled_objects_are_refused(tmp_path):
    import fractions

    # Any class outside the weights-only allow-list stands for arbitrary code run by full unpickling.
    torch.save({"x": fractions.Fraction(1, 3)}, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="is not unpickled") as refused:
        VGGT.from_pretrained(tmp_path / "evil.pt", config=TINY / "config.json")
    # torch's own text advised weights_only=False, which would run the file's code; the fix is a safetensors file
    assert "weights_only" not in str(refused.value) and "safetensors" in str(refused.value)


def test_a_safetensors_file_is_read_as_one_whatever_its_suffix(tmp_path, tiny_model):
    """Named .bin, it was unpickled ("Unsupported operand 72, please file an issue")."""
    from safetensors.torch import save_file

    save_file(dict(tiny_model.state_dict()), str(tmp_path / "pytorch_model.bin"))
    model = VGGT.from_pretrained(tmp_path / "pytorch_model.bin", config=TINY / "config.json")
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), tiny_model.state_dict().values()))


def test_wrong_keys_are_listed(tmp_path, tiny_model):
    from safetensors.torch import save_file

    state = {k: v.clone() for k, v in tiny_model.state_dict().items()}
    del state["camera_head.embed_pose.weight"]
    state["camera_head.extra"] = torch.zeros(1)
    state["depth_head.norm.weight"] = torch.zeros(7)
    save_file(state, tmp_path / "w.safetensors")
    with pytest.raises(CheckpointError) as err:
        VGGT.from_pretrained(tmp_path / "w.safetensors", config=TINY / "config.json")
    text = str(err.value)
    assert "missing (1)" in text and "camera_head.embed_pose.weight" in text
    assert "unexpected (1)" in text and "camera_head.extra" in text
    assert "wrong shape (1)" in text and "depth_head.norm.weight: checkpoint (7,)" in text


def test_a_folder_whose_weights_file_is_damaged_says_it_is_unreadable(tmp_path):
    """A copy cut short: the folder "must hold exactly one VGGT *.safetensors file ...; found
    state_dict.safetensors", the file it held."""
    folder = tmp_path / "weights"
    folder.mkdir()
    shutil.copy(TINY / "config.json", folder)
    data = (TINY / "state_dict.safetensors").read_bytes()
    (folder / "state_dict.safetensors").write_bytes(data[: len(data) // 2])
    (folder / "other.safetensors").write_bytes((TINY / "fixture_caseA.safetensors").read_bytes())  # not weights
    with pytest.raises(CheckpointError) as err:
        VGGT.from_pretrained(folder)
    text = str(err.value)
    assert "found other.safetensors (no VGGT keys), state_dict.safetensors (unreadable: " in text, text


def test_missing_weights_and_offline_hub_give_the_fix(tmp_path, monkeypatch):
    with pytest.raises(CheckpointError, match="weights not found"):
        VGGT.from_pretrained(tmp_path / "nope.safetensors")
    with pytest.raises(CheckpointError, match="found no weight files"):
        VGGT.from_pretrained(tmp_path)
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        CheckpointError,
        match="not in the local Hugging Face cache and HF_HUB_OFFLINE is set.*hf download facebook/VGGT-1B",
    ):
        VGGT.from_pretrained("facebook/VGGT-1B")


def test_the_download_command_the_fix_names_is_installed(tmp_path, monkeypatch):
    """The hint names a command that exists where the package is installed (huggingface_hub 1.x and later install
    `hf`; `huggingface-cli` is gone)."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError) as raised:
        VGGT.from_pretrained("facebook/VGGT-1B")
    command = re.search(r"run `(\S+) ", str(raised.value)).group(1)
    assert (Path(sys.executable).parent / command).is_file(), f"{command} is not installed beside {sys.executable}"


def test_an_unreachable_hub_fails_at_once_with_the_fix(tmp_path, monkeypatch):
    """No network: one clear error within seconds, not the hub client's minute of retries (port 9 refuses)."""
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(CheckpointError, match="cannot reach http://127.0.0.1:9 .*hf download"):
        VGGT.from_pretrained("facebook/VGGT-1B")
    assert time.monotonic() - start < 10


def test_a_checkpoint_in_the_hub_cache_loads_offline(tmp_path, monkeypatch):
    """The hub cache's layout (models--<org>--<name>/refs/main -> snapshots/<revision>/files) is read offline."""
    import huggingface_hub.constants as hub

    snapshot = tmp_path / "models--facebook--VGGT-1B" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (tmp_path / "models--facebook--VGGT-1B" / "refs").mkdir()
    (tmp_path / "models--facebook--VGGT-1B" / "refs" / "main").write_text("0123abcd")
    shutil.copy(TINY / "state_dict.safetensors", snapshot / "model.safetensors")
    shutil.copy(TINY / "config.json", snapshot / "config.json")
    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hub, "HF_HUB_OFFLINE", True)
    cached = VGGT.from_pretrained("facebook/VGGT-1B")
    direct = VGGT.from_pretrained(TINY)
    assert all(torch.equal(a, b) for a, b in zip(cached.state_dict().values(), direct.state_dict().values()))


@pytest.mark.parametrize(
    "shape, message",
    [
        ((1, 4, 28, 28), "3 \\(RGB\\) channels"),
        ((2, 3, 30, 28), "multiple of the patch size"),
        ((2, 3, 28, 41), "multiple of the patch size"),
        ((0, 3, 28, 28), "empty image batch"),
        ((3, 28, 28), "must be \\(S, 3, H, W\\)"),
    ],
)
def test_bad_model_input_is_refused(tiny_model, shape, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(torch.rand(shape))


def test_integer_images_are_refused(tiny_model):
    with pytest.raises(TypeError, match="divide uint8 images by 255"):
        tiny_model(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))
