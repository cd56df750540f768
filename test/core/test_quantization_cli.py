# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-quantize` end to end on the user-side files it writes, read back by the runtime, and the clear errors
of bad input: an empty calibration set, a plan naming blocks that do not exist, a scheme a backend cannot run."""

import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from PIL import Image
from safetensors import safe_open
from test_quantization_qdq import write_micro_model

from support.small_filesystem import fill, small_filesystem
from support.torch_threads import one_torch_thread  # noqa: F401 (autouse, module-wide)
from vggt_ros.files import SAVE_RECORD
from vggt_ros.model import VGGT
from vggt_ros.model.weights import CheckpointError
from vggt_ros.quantization import cli
from vggt_ros.quantization.objective import errors_vs_reference
from vggt_ros.quantization.report import CAVEAT
from vggt_ros.quantized_formats.compensated_head import CompensatedCameraHead
from vggt_ros.quantized_formats.int4 import W4A16Linear
from vggt_ros.quantized_formats.plan import QuantizationPlan, scheme_blocks
from vggt_ros.quantized_formats.schemes import UnsupportedSchemeError
from vggt_ros.quantized_formats.w4a16_file import QuantizedExportError, load_w4a16_model
from vggt_ros.runtime import Pipeline, RuntimeConfig, create_pipeline
from vggt_ros.runtime.io_contract import ExportManifest
from vggt_ros.runtime.weights_source import load_model

STOPPED = "stopped; --out holds a whole export: the earlier one, or this one if it was already in place"
REPORT_KEYS = {"scheme", "error_vs_fp32", "weight_bytes", "fp16_weight_bytes", "block_sensitivity"}
MICRO_BLOCKS = 2 + 2 * 4 + 4  # DINOv2, aggregator frame + global, camera trunk


@pytest.fixture(scope="module")
def micro(tmp_path_factory):
    return write_micro_model(tmp_path_factory.mktemp("micro"))


def write_smooth_images(folder, count, seed=0):
    """``count`` smooth random 28x28 PNG images in ``folder``."""
    rng = np.random.default_rng(seed)
    for index in range(count):
        coarse = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        Image.fromarray(coarse).resize((28, 28), Image.Resampling.BILINEAR).save(folder / f"{index}.png")
    return folder


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    """Four smooth random 28x28 images: two windows of two frames."""
    return write_smooth_images(tmp_path_factory.mktemp("calibration"), 4)


def quantize(micro, calibration, out, scheme, *extra):
    return cli.main(
        [
            "--weights",
            str(micro),
            "--calibration",
            str(calibration),
            "--scheme",
            scheme,
            "--out",
            str(out),
            "--frames",
            "2",
            "--image-size",
            "28",
            "--device",
            "cpu",
            *extra,
        ]
    )


def calibration_windows_of(calibration):
    from vggt_ros.quantization.calibration import CalibrationConfig, calibration_windows, load_calibration_images

    return calibration_windows(load_calibration_images(calibration, CalibrationConfig(image_size=28)), 2)


def test_w4a16_writes_plan_report_and_the_export_the_torch_backend_runs(micro, calibration, tmp_path, capsys):
    out = tmp_path / "w4a16"
    assert (
        quantize(micro, calibration, out, "w4a16", "--protect", "2", "--search-steps", "2", "--compensation", "on") == 0
    )
    printed = capsys.readouterr().out
    report = json.loads((out / "report.json").read_text())
    assert REPORT_KEYS <= set(report) and set(report["error_vs_fp32"]) == {"depth_rel", "points_rel", "camera_rel"}
    assert printed.index("Per-block sensitivity") < printed.index("Final error vs FP32") < printed.index("Weights")
    assert printed.rstrip().endswith(CAVEAT)

    # The two most sensitive blocks are the plan's protected ones.
    plan = QuantizationPlan.load(out / "plan.json")
    ranked = sorted(report["block_sensitivity"], key=lambda row: -row["score"])
    assert len(ranked) == MICRO_BLOCKS and set(plan.protected_blocks) == {row["block"] for row in ranked[:2]}
    assert {row["block"] for row in report["block_sensitivity"] if row["protected"]} == set(plan.protected_blocks)

    # Memory: the weights as held are the file's tensors, less than FP16.
    with safe_open(str(out / "w4a16.safetensors"), framework="pt") as stream:
        payload = sum(stream.get_tensor(key).numel() * stream.get_tensor(key).element_size() for key in stream.keys())
    assert report["weight_bytes"] == payload < report["fp16_weight_bytes"]
    # The export's size is the file's, header and all (it was the tensors' bytes, 31 % under the file here).
    assert report["export_bytes"] == (out / "w4a16.safetensors").stat().st_size > payload

    # The runtime reads the export back (engine_dir + precision) and reproduces the reported error exactly.
    pipeline = create_pipeline(RuntimeConfig(backend="torch", precision="w4a16", engine_dir=str(out), device="cpu"))
    windows = calibration_windows_of(calibration)
    reference_model = VGGT.from_pretrained(micro)
    with torch.inference_mode():
        references = [reference_model(window) for window in windows]
        outputs = [pipeline(window) for window in windows]
    errors = errors_vs_reference(outputs, references)
    assert errors == pytest.approx(report["error_vs_fp32"], rel=1e-9)
    assert min(errors.values()) > 0
    loaded = load_w4a16_model(out)  # the compensation token travelled with the weights
    assert isinstance(loaded.camera_head, CompensatedCameraHead) and report["compensation_token"]["kept"]
    assert float(loaded.camera_head.compensation_token.norm()) > 0
    # Given as the weights (the folder, its file, the file alone), the export was read as a checkpoint: 600 key
    # mismatches.
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(out / "w4a16.safetensors", alone)
    for given in (out, out / "w4a16.safetensors", alone / "w4a16.safetensors"):
        with pytest.raises(CheckpointError) as err:
            create_pipeline(RuntimeConfig(weights=str(given), device="cpu"))
        assert str(err.value).startswith(
            f"{given} is a vggt-ros-quantize w4a16 export, not VGGT weights: run it with precision w4a16 on the torch "
            "backend and its folder as the engine folder"
        )
    # Weights with a plan kept beside them (--plan takes one from anywhere) are weights.
    shutil.copytree(micro, tmp_path / "weights_and_plan")
    shutil.copy(out / "plan.json", tmp_path / "weights_and_plan")
    assert isinstance(load_model(tmp_path / "weights_and_plan"), VGGT)


def test_fp8_writes_a_qdq_export_that_onnxruntime_runs_at_precision_fp8(micro, calibration, tmp_path):
    out = tmp_path / "fp8"
    assert (
        quantize(micro, calibration, out, "fp8", "--search-steps", "1", "--compensation", "off", "--max-frames", "4")
        == 0
    )
    report = json.loads((out / "report.json").read_text())
    manifest = ExportManifest.load(out)
    assert manifest.quantization_scheme == "fp8" and manifest.opset == 19 and manifest.frames.max == 4
    assert QuantizationPlan.from_json(manifest.quantization["plan"]) == QuantizationPlan.load(out / "plan.json")
    types = {i.data_type for i in onnx.load(str(out / "aggregator.onnx")).graph.initializer}
    assert onnx.TensorProto.FLOAT8E4M3FN in types
    assert report["weight_bytes"] < report["fp16_weight_bytes"] < report["export_bytes"]  # graphs hold float32

    pipeline = create_pipeline(RuntimeConfig(backend="onnxruntime", precision="fp8", engine_dir=str(out)))
    window = calibration_windows_of(calibration)[0]
    with torch.inference_mode():
        reference = VGGT.from_pretrained(micro)(window)
    errors = errors_vs_reference([pipeline(window)], [reference])
    print("fp8 through onnxruntime, relative error vs FP32 (%):", errors)
    assert all(0 < value < float("inf") for value in errors.values())
    with pytest.raises(
        CheckpointError,
        match="is a vggt-ros-quantize fp8 export, not VGGT weights: run it with "
        "backend onnxruntime or tensorrt, precision fp8",
    ):
        load_model(out)  # "found no weight files" before
    for precision, match in (
        ("fp16", "holds an export quantized for fp8; set precision to 'fp8'"),
        ("int8", "needs an export quantized for it, but .* holds an export quantized for fp8"),
    ):
        with pytest.raises(ValueError, match=match):
            create_pipeline(RuntimeConfig(backend="onnxruntime", precision=precision, engine_dir=str(out)))


def run_entry(monkeypatch, capsys, arguments):
    monkeypatch.setattr("sys.argv", ["vggt-ros-quantize", *arguments])
    with pytest.raises(SystemExit) as exit_status:
        cli.entry()
    return exit_status.value.code, capsys.readouterr().err


def test_an_empty_calibration_set_is_a_clear_error(micro, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    code, error = run_entry(
        monkeypatch,
        capsys,
        [
            "--weights",
            str(micro),
            "--calibration",
            str(tmp_path / "empty"),
            "--scheme",
            "w4a16",
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert code == 1 and "error: the calibration set is empty" in error and not (tmp_path / "out").exists()


def test_a_plan_naming_blocks_that_do_not_exist_is_a_clear_error(micro, calibration, tmp_path, monkeypatch, capsys):
    plan = QuantizationPlan(
        "w4a16", {"aggregator.frame_blocks.4": ["attn.proj"], "aggregator.frame_blocks.0": ["attn.qkv"]}
    )
    plan.save(tmp_path / "plan.json")
    code, error = run_entry(
        monkeypatch,
        capsys,
        [
            "--weights",
            str(micro),
            "--calibration",
            str(calibration),
            "--scheme",
            "w4a16",
            "--out",
            str(tmp_path / "out"),
            "--plan",
            str(tmp_path / "plan.json"),
            "--image-size",
            "28",
        ],
    )
    assert code == 1 and "blocks that do not exist in this model: ['aggregator.frame_blocks.4']" in error
    assert "aggregator.frame_blocks.0-3" in error
    code, error = run_entry(
        monkeypatch,
        capsys,
        [
            "--weights",
            str(micro),
            "--calibration",
            str(calibration),
            "--scheme",
            "int8",
            "--out",
            str(tmp_path / "out"),
            "--plan",
            str(tmp_path / "plan.json"),
        ],
    )
    assert code == 1 and "the plan is for w4a16 but the scheme asked for is int8" in error


def test_a_scheme_the_backend_cannot_run_is_a_clear_error(micro, tmp_path):
    with pytest.raises(UnsupportedSchemeError, match="'w4a16' cannot run on the onnxruntime backend .*backend 'torch'"):
        RuntimeConfig(backend="onnxruntime", precision="w4a16")
    with pytest.raises(UnsupportedSchemeError, match="'int8' cannot run on the torch backend .*'onnxruntime' or"):
        RuntimeConfig(backend="torch", precision="int8")
    model = VGGT.from_pretrained(micro)
    with pytest.raises(UnsupportedSchemeError, match="'fp8' cannot run on the torch backend"):
        Pipeline.from_model(model, device="cpu", precision="fp8")
    with pytest.raises(ValueError, match="'w4a16' needs a model with packed INT4 weights"):
        Pipeline.from_model(model, device="cpu", precision="w4a16")
    with pytest.raises(QuantizedExportError, match="holds no W4A16 export .*vggt-ros-quantize --scheme w4a16"):
        create_pipeline(RuntimeConfig(backend="torch", precision="w4a16", engine_dir=str(tmp_path), device="cpu"))


def test_w4a16_keeps_layers_whose_width_does_not_split_into_groups_in_fp16(micro, calibration, tmp_path):
    """Groups of 48: the micro model's 16- and 32-channel layers are narrower (one group per row), but every block's
    mlp.fc2 reads 64 channels (DINOv2 and aggregator MLPs) or 128 (camera trunk), not multiples of 48."""
    out = tmp_path / "w4a16"
    options = ("--group-size", "48", "--search-steps", "1", "--protect", "0")
    assert quantize(micro, calibration, out, "w4a16", *options) == 0
    model = VGGT.from_pretrained(micro)
    blocks = scheme_blocks(model, "w4a16")
    expected = [f"{block}.mlp.fc2" for block in blocks]
    assert {model.get_submodule(name).in_features for name in expected} == {64, 128}
    plan_json = json.loads((out / "plan.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert sorted(plan_json["fp16_layers"]) == sorted(report["fp16_layers"]) == sorted(expected)
    assert all("mlp.fc2" not in layers for layers in plan_json["blocks"].values())

    loaded = load_w4a16_model(out)
    for name in expected:
        assert type(loaded.get_submodule(name)) is torch.nn.Linear
        assert loaded.get_submodule(name).weight.dtype == torch.float32  # FP16 in the file, computed in float32
    packed = [module for module in loaded.modules() if isinstance(module, W4A16Linear)]
    assert len(packed) == report["quantized_layers"]["count"] == 3 * len(blocks)  # qkv, proj, fc1 per block
    assert {(m.in_features, m.group_size) for m in packed} <= {(16, 16), (32, 32)}
    pipeline = create_pipeline(RuntimeConfig(backend="torch", precision="w4a16", engine_dir=str(out), device="cpu"))
    with torch.inference_mode():
        outputs = pipeline(calibration_windows_of(calibration)[0])
    assert all(bool(torch.isfinite(value).all()) for value in outputs.values())


def test_strict_refuses_layers_whose_width_does_not_split(micro, calibration, tmp_path, monkeypatch, capsys):
    code, error = run_entry(
        monkeypatch,
        capsys,
        [
            *("--weights", str(micro), "--calibration", str(calibration), "--scheme", "w4a16"),
            *("--out", str(tmp_path / "out"), "--image-size", "28", "--group-size", "48", "--strict"),
        ],
    )
    assert code == 1 and "input channels, not a multiple of the group size 48" in error
    assert "choose a group size that divides 64" in error and not (tmp_path / "out").exists()


@pytest.mark.parametrize("out", ["a-file", "a-file/sub", "/proc/vggt-ros-quantize-test/out"])
def test_an_unusable_out_is_refused_before_any_work(out, calibration, tmp_path, monkeypatch, capsys):
    """The weights do not exist either: only a check of --out before everything else names --out."""
    (tmp_path / "a-file").write_text("not a folder")
    out = out if out.startswith("/") else str(tmp_path / out)
    code, error = run_entry(
        monkeypatch,
        capsys,
        [
            *("--weights", str(tmp_path / "no-weights"), "--calibration", str(calibration)),
            *("--scheme", "w4a16", "--out", out),
        ],
    )
    assert code == 1 and error.startswith(f"error: --out {out} ") and "Traceback" not in error
    assert "choose a folder path" in error or "choose another path" in error or "choose a writable folder" in error


def write_plan(path, data):
    path.write_text(json.dumps({"format": 1, **data}))
    return path


def quantize_with_plan(data, calibration, tmp_path, monkeypatch, capsys, *extra):
    """A w4a16 run with the plan ``data`` (written to plan.json) and ``extra`` options, on weights that do not
    exist (a plan the command refuses is refused before they are looked at): (exit code, stderr, the plan's path)."""
    plan = write_plan(tmp_path / "plan.json", data)
    code, error = run_entry(
        monkeypatch,
        capsys,
        [
            *("--weights", str(tmp_path / "no-weights"), "--calibration", str(calibration), "--scheme", "w4a16"),
            *("--out", str(tmp_path / "out"), "--plan", str(plan), *extra),
        ],
    )
    return code, error, plan


def test_a_plan_with_no_blocks_is_refused_at_once_and_nothing_is_written(calibration, tmp_path, monkeypatch, capsys):
    data = {"scheme": "w4a16", "group_size": 128, "blocks": {}}
    code, error, _ = quantize_with_plan(data, calibration, tmp_path, monkeypatch, capsys)
    assert code == 1 and "the plan quantizes nothing (its blocks are empty)" in error
    assert not (tmp_path / "out").exists()


def test_a_group_size_other_than_the_plans_is_refused_before_any_work(calibration, tmp_path, monkeypatch, capsys):
    """The plan's group size won without a word, while the layers kept in FP16 and the sensitivity pass used
    --group-size's."""
    data = {"scheme": "w4a16", "group_size": 8, "blocks": {"aggregator.frame_blocks.0": ["attn.proj"]}}
    code, error, _ = quantize_with_plan(data, calibration, tmp_path, monkeypatch, capsys, "--group-size", "16")
    assert code == 1 and "--group-size 16 differs from the --plan's group_size 8" in error
    assert not (tmp_path / "out").exists()


def test_a_plan_for_another_scheme_is_reported_as_such(calibration, tmp_path, monkeypatch, capsys):
    """An INT8 plan keeps the w4a16 group size it was edited from: the conflict is the scheme, not the group."""
    data = {"scheme": "int8", "group_size": 128, "blocks": {"aggregator.frame_blocks.0": ["attn.proj"]}}
    code, error, plan = quantize_with_plan(data, calibration, tmp_path, monkeypatch, capsys)
    assert code == 1 and f"{plan}: the plan is for int8 but the scheme asked for is w4a16" in error
    assert "--scheme int8" in error and "group_size applies" not in error


def test_a_full_disk_while_writing_the_export_is_a_clear_error_and_keeps_the_plan(
    micro, calibration, tmp_path, monkeypatch, capsys
):
    """The search can take hours: a disk that fills while the export is written is one error line, and the plan
    stays for a rerun with --plan."""
    with small_filesystem(tmp_path / "disk", 64) as disk:
        fill(disk, 12 * 1024)  # room for plan.json, not for the weights
        out = disk / "out"
        code, error = run_entry(
            monkeypatch,
            capsys,
            [
                "--weights", str(micro), "--calibration", str(calibration), "--scheme", "w4a16",
                "--image-size", "28", "--search-steps", "1", "--compensation", "off", "--out", str(out),
            ],
        )  # fmt: skip
        assert code == 1 and error.startswith("error: ") and "No space left on device" in error, error
        assert QuantizationPlan.load(out / "plan.unexported.json").scheme == "w4a16"
        # No partial weights, no temporary file, no plan.json that would say an export is there.
        assert sorted(p.name for p in out.iterdir()) == [SAVE_RECORD, "plan.unexported.json"]


@pytest.mark.parametrize(
    "option, message",
    [
        (("--group-size", "0"), "--group-size must be an even number of input channels >= 2, got 0"),
        # It failed inside the sensitivity pass, after the model had loaded, naming no option.
        (("--group-size", "1"), "--group-size must be an even number of input channels >= 2, got 1"),
        (("--scheme", "int8", "--opset", "99"), "ONNX opset 99 is above 23"),
        (("--scheme", "int8", "--max-frames", "0"), "--max-frames 0: frames profile must satisfy"),
        (("--scheme", "int8", "--opset", "7"), "ONNX opset 7 is below 14"),
        # It calibrated at 6 frames an export that accepts 4 at most.
        (("--scheme", "int8", "--frames", "6", "--max-frames", "4"), "--frames 6 is more than --max-frames 4"),
        # These named the fields they set (frames, max_images, protected_blocks, steps); --image-size 30 was
        # "target_size must be ...", after every calibration image was read.
        (("--frames", "0"), "--frames must be a positive integer, got 0"),
        (("--max-images", "0"), "--max-images must be a positive integer, got 0"),
        (
            ("--image-size", "30"),
            "--image-size must be a positive multiple of the patch size 14 (518 for VGGT-1B), got 30",
        ),
        (("--protect", "-1"), "--protect must be an integer >= 0, got -1"),
        (("--search-steps", "0"), "--search-steps must be a positive integer (1: no search), got 0"),
    ],
)
def test_options_the_export_would_refuse_are_refused_before_any_work(
    option, message, calibration, tmp_path, monkeypatch, capsys
):
    """They failed after the whole calibration (hours for VGGT-1B), --group-size 0 with a traceback."""
    arguments = ["--weights", str(tmp_path / "no-weights"), "--calibration", str(calibration)]
    scheme = [] if "--scheme" in option else ["--scheme", "w4a16"]
    code, error = run_entry(monkeypatch, capsys, [*arguments, *scheme, *option, "--out", str(tmp_path / "out")])
    assert code == 1 and error.startswith("error: ") and message in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()


def test_cuda_on_a_machine_without_it_is_refused_before_any_work(calibration, tmp_path, monkeypatch, capsys):
    """It was torch's AssertionError ("Torch not compiled with CUDA enabled") as a traceback, after the model and
    the calibration images had loaded."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    arguments = ["--weights", str(tmp_path / "no-weights"), "--calibration", str(calibration), "--scheme", "w4a16"]
    code, error = run_entry(monkeypatch, capsys, [*arguments, "--device", "cuda", "--out", str(tmp_path / "out")])
    assert code == 1 and error.startswith("error: --device cuda: torch sees no CUDA GPU") and "Traceback" not in error


@pytest.mark.parametrize("option", ["--out", "--calibration", "--plan"])
def test_an_empty_path_is_refused_at_parsing_not_taken_for_the_current_folder(
    option, calibration, tmp_path, monkeypatch, capsys
):
    """--out "" wrote plan.json, report.json and the export into the current folder."""
    paths = {"--out": str(tmp_path / "out"), "--calibration": str(calibration), "--plan": str(tmp_path / "plan")}
    arguments = [*(item for name, path in paths.items() for item in (name, "" if name == option else path))]
    code, error = run_entry(monkeypatch, capsys, ["--weights", str(tmp_path / "w"), "--scheme", "w4a16", *arguments])
    assert code == 2 and f"argument {option}: is empty; give a path" in error


def test_an_out_that_is_the_weights_folder_is_refused_before_any_work(micro, calibration, monkeypatch, capsys):
    """The export beside the weights left the folder unreadable as weights (two weight files), for every tool."""
    before = sorted(p.name for p in micro.iterdir())
    code, error = run_entry(
        monkeypatch,
        capsys,
        ["--weights", str(micro), "--calibration", str(calibration), "--scheme", "w4a16", "--out", str(micro)],
    )
    assert code == 1 and error.startswith(f"error: --out {micro} is the folder of --weights {micro}")
    assert sorted(p.name for p in micro.iterdir()) == before


@pytest.mark.parametrize("held, scheme", [("int8", "w4a16"), ("w4a16", "int8"), (None, "fp8")])
def test_an_out_holding_another_export_is_refused_before_any_work(
    held, scheme, calibration, tmp_path, monkeypatch, capsys
):
    """A w4a16 run into an int8 export's folder replaced its plan and report and left its graphs: the folder then
    described neither. (None: a floating-point export, its manifest.json without a plan.)"""
    out = tmp_path / "out"
    out.mkdir()
    if held is None:
        (out / "manifest.json").write_text("{}")
    else:
        write_plan(out / "plan.json", {"scheme": held, "group_size": 128 if held == "w4a16" else None, "blocks": {}})
    before = sorted(p.name for p in out.iterdir())
    arguments = ["--weights", str(tmp_path / "no-weights"), "--calibration", str(calibration), "--scheme", scheme]
    code, error = run_entry(monkeypatch, capsys, [*arguments, "--out", str(out)])
    assert code == 1 and f"--out {out} holds an export for {held or 'floating point'}" in error
    assert sorted(p.name for p in out.iterdir()) == before


def test_a_users_own_file_of_an_outputs_name_is_refused_before_any_work(calibration, tmp_path, monkeypatch, capsys):
    """A project folder's own report.json was overwritten at the end of the run."""
    out = tmp_path / "project"
    out.mkdir()
    (out / "report.json").write_text("the user's own report\n")
    arguments = ["--weights", str(tmp_path / "no-weights"), "--calibration", str(calibration), "--scheme", "w4a16"]
    code, error = run_entry(monkeypatch, capsys, [*arguments, "--out", str(out)])
    assert code == 1 and error.startswith(f"error: --out {out} holds report.json, which no earlier run recorded")
    assert (out / "report.json").read_text() == "the user's own report\n"
    assert sorted(p.name for p in out.iterdir()) == ["report.json"]


def test_ctrl_c_during_the_calibration_is_one_line_and_its_exit_status(
    micro, calibration, tmp_path, monkeypatch, capsys
):
    """A traceback before; SIGTERM ended the process without unwinding (an export's staging folder stayed)."""
    import os
    import signal

    def interrupted_for_tests(*args, **kwargs):  # a test double of the user's Ctrl-C during the search
        os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(cli, "run_recipe", interrupted_for_tests)
    arguments = ["--weights", str(micro), "--calibration", str(calibration), "--scheme", "w4a16", "--image-size", "28"]
    code, error = run_entry(monkeypatch, capsys, [*arguments, "--out", str(tmp_path / "out")])
    assert code == 130 and error == f"SIGINT: {STOPPED}\n"
    assert not (tmp_path / "out").exists()  # nothing was computed: nothing is kept


def test_ctrl_c_while_a_rerun_is_evaluated_keeps_the_earlier_export_and_the_new_plan(
    micro, calibration, tmp_path, monkeypatch, capsys
):
    """The new weights were in place beside the earlier run's report.json and plan.json, and the message said the
    export was incomplete. With VGGT-1B that gap is the whole evaluation."""
    import os
    import signal

    out = tmp_path / "out"
    arguments = ["--weights", str(micro), "--calibration", str(calibration), "--scheme", "w4a16"]
    arguments += ["--image-size", "28", "--frames", "2", "--device", "cpu", "--out", str(out)]
    assert cli.main([*arguments, "--search-steps", "1", "--compensation", "off", "--protect", "4"]) == 0
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    load = cli.load_w4a16_model

    def interrupted_while_evaluated(*args, **kwargs):  # a test double: Ctrl-C once the weights are written
        os.kill(os.getpid(), signal.SIGINT)
        return load(*args, **kwargs)

    monkeypatch.setattr(cli, "load_w4a16_model", interrupted_while_evaluated)
    code, error = run_entry(monkeypatch, capsys, [*arguments, "--search-steps", "1", "--protect", "2"])
    monkeypatch.undo()
    assert code == 130 and error == f"SIGINT: {STOPPED}\n"
    after = {path.name: path.read_bytes() for path in out.iterdir()}
    unexported = out / "plan.unexported.json"
    assert {name: after[name] for name in before if name != SAVE_RECORD} == {
        name: data for name, data in before.items() if name != SAVE_RECORD
    }
    assert set(after) == {*before, unexported.name}
    kept = QuantizationPlan.load(unexported)
    assert len(kept.protected_blocks) == 2 and kept != QuantizationPlan.load(out / "plan.json")  # the rerun's search

    # The kept plan exports without the search, and the export it makes replaces it.
    assert cli.main([*arguments, "--plan", str(unexported), "--compensation", "off"]) == 0
    assert not unexported.exists()
    assert QuantizationPlan.load(out / "plan.json") == kept
