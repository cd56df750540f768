# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""`vggt-ros-quantize`: post-training quantization of VGGT on the user's own images.

    vggt-ros-quantize --weights VGGT-1B --calibration images/ --scheme w4a16 --out quantized/
    vggt-ros-quantize --weights VGGT-1B --calibration run.mcap --topic /camera/image --scheme int8 --out int8/

writes into ``--out``: ``plan.json`` (the mixed-precision plan; edit it and pass it back with ``--plan``),
``report.json`` and the quantized export the runtime takes with ``engine_dir`` = ``--out`` and ``precision`` = the
scheme: ``w4a16.safetensors`` for the torch backend, or ``manifest.json`` and five ONNX graphs with Q/DQ nodes for
onnxruntime / tensorrt. The printed report ends with what its figures do and do not say.

They are swapped into ``--out`` together at the end, as an export is (`vggt_ros.export.folder`): an earlier run's
files stay as they were until then. A run whose export fails or is stopped after the search keeps the search's plan
as ``plan.unexported.json`` in ``--out``, for a rerun with ``--plan``.
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import torch

from vggt_ros.arguments import path_argument
from vggt_ros.export.folder import STOPPED_MESSAGE, check_export_entries
from vggt_ros.export.onnx_export import EXPORT_ENTRIES, check_opset
from vggt_ros.files import add_to_save_record, staged_entries
from vggt_ros.live.parameters import renamed
from vggt_ros.model import VGGT
from vggt_ros.output_folder import check_output_folder
from vggt_ros.quantized_formats.compensated_head import CompensatedCameraHead
from vggt_ros.quantized_formats.layers import replace_modules
from vggt_ros.quantized_formats.plan import DEFAULT_GROUP_SIZE, PLAN_FILE, QuantizationPlan, quantized_scheme_in
from vggt_ros.quantized_formats.schemes import QDQ_SCHEMES, SCHEMES, W4A16
from vggt_ros.quantized_formats.w4a16_file import W4A16_FILE, load_w4a16_model, save_w4a16_export
from vggt_ros.runtime import Pipeline
from vggt_ros.runtime.io_contract import MANIFEST_FILE, FramesProfile
from vggt_ros.runtime.weights_source import load_model
from vggt_ros.termination import run_command

from .calibration import CalibrationConfig, calibration_windows, load_calibration_images
from .evaluation import window_outputs
from .export import (
    export_qdq,
    fp16_weight_bytes,
    held_weight_bytes,
    onnx_export_bytes,
    pack_w4a16,
    packed_layers,
    quantized_layer_bytes,
)
from .objective import ObjectiveWeights, errors_vs_reference
from .qdq import QDQLinear
from .recipe import COMPENSATION_MODES, RecipeConfig, RecipeResult, run_recipe
from .report import REPORT_FILE, build_report, format_report, write_report
from .search import SearchConfig

log = logging.getLogger("vggt_ros.quantize")

# The configurations' fields by the options that set them.
CONFIG_OPTIONS = {
    "frames": "--frames",
    "max_images": "--max-images",
    "image_size": "--image-size",
    "protected_blocks": "--protect",
    "steps": "--search-steps",
}
# The plan of a search whose export failed or was stopped (the search can take hours), kept for a rerun with --plan.
UNEXPORTED_PLAN_FILE = "plan.unexported.json"
# Every entry a run writes into --out: the plan, the report and the export of either kind, and the plan it keeps when
# its export did not complete.
QUANTIZE_ENTRIES = (PLAN_FILE, REPORT_FILE, W4A16_FILE, *EXPORT_ENTRIES, UNEXPORTED_PLAN_FILE)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="vggt-ros-quantize", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--weights", required=True, help="hub id, folder or weights file of the FP32 model")
    parser.add_argument("--config", default=None, help="model config.json for a bare weights file")
    parser.add_argument(
        "--calibration",
        type=path_argument,
        required=True,
        help="folder of images, or a bag: rosbag2 (folder with metadata.yaml, .mcap, .db3) or ROS 1 (.bag)",
    )
    parser.add_argument("--topic", default=None, help="with a bag: the image topic to calibrate on")
    parser.add_argument("--scheme", choices=SCHEMES, required=True)
    parser.add_argument("--out", type=path_argument, required=True, help="output folder (the runtime's engine_dir)")
    parser.add_argument("--frames", type=int, default=8, help="images per window S, as the node runs VGGT")
    parser.add_argument("--max-images", type=int, default=128, help="evenly spaced calibration images kept")
    parser.add_argument("--image-size", type=int, default=518, help="model input width (crop) or longer side (pad)")
    parser.add_argument("--mode", default="crop", choices=("crop", "pad"), help="preprocessing mode, as the node's")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", choices=("cpu", "cuda"))
    parser.add_argument("--plan", type=path_argument, default=None, help="a (hand-edited) plan.json to use as it is")
    parser.add_argument("--protect", type=int, default=4, help="most sensitive blocks kept in FP16 but attn.proj")
    parser.add_argument(
        "--group-size",
        type=int,
        default=None,
        help=f"w4a16 input channels per scale (default: {DEFAULT_GROUP_SIZE}, or the --plan's)",
    )
    parser.add_argument(
        "--strict",
        action="store_true",
        help="w4a16: refuse layers whose input channels are not a multiple of --group-size (default: they keep FP16 "
        "weights and are listed as fp16_layers in plan.json and report.json)",
    )
    parser.add_argument("--search-steps", type=int, default=5, help="scale candidates per block (1: no search)")
    parser.add_argument(
        "--compensation",
        choices=COMPENSATION_MODES,
        default="auto",
        help="compensation token: auto keeps it only if it lowers the task loss",
    )
    parser.add_argument("--max-frames", type=int, default=8, help="int8 / fp8: largest window the graphs accept")
    parser.add_argument("--opset", type=int, default=18, help="int8 / fp8: ONNX opset (fp8 needs 19, raised to it)")
    return parser.parse_args(argv)


def _export_w4a16(model: VGGT, result: RecipeResult, args, windows, folder: Path) -> dict:
    """Write the packed export into ``folder``; its error as the torch backend runs it once read back, and its
    bytes."""
    save_w4a16_export(folder, pack_w4a16(model, result.layers, result.compensation_token), result.plan)
    stored_bytes = (folder / W4A16_FILE).stat().st_size  # the file written, header and all
    exported = load_w4a16_model(folder, args.device)
    pipeline = Pipeline.from_model(exported, device=args.device, precision=W4A16)
    outputs = [{k: v.float().cpu() for k, v in pipeline(window).items()} for window in windows]
    return {
        "errors": errors_vs_reference(outputs, result.reference.outputs),
        "export_bytes": stored_bytes,
        "layers": quantized_layer_bytes(packed_layers(exported, result.plan)),
        "measured_with": "the export read back and run by the torch backend at precision w4a16",
    }


def _export_qdq(model: VGGT, result: RecipeResult, args, windows, folder: Path) -> dict:
    """Write the Q/DQ ONNX export into ``folder``; the error of the torch model it reproduces, and its bytes."""
    if result.compensation_token is not None:
        model.camera_head = CompensatedCameraHead(model.camera_head, result.compensation_token.to(args.device))
    layers: dict[str, QDQLinear] = result.layers  # type: ignore[assignment]
    manifest = export_qdq(model, result.plan, layers, folder, result.reference.image_hw, _frames(args), args.opset)
    replace_modules(model, layers)
    return {
        "errors": errors_vs_reference(window_outputs(model, windows), result.reference.outputs),
        "export_bytes": onnx_export_bytes(folder, manifest),
        "layers": quantized_layer_bytes(layers),
        "measured_with": "the torch fake-quantized model that the ONNX Q/DQ graphs compute",
    }


def _frames(args) -> FramesProfile:
    """int8 / fp8: the frame range of the exported graphs (raises ValueError for a bad --max-frames)."""
    return FramesProfile(1, max(1, args.max_frames // 2), args.max_frames)


def _check_options(args) -> None:
    """What only the export would refuse, hours later, refused before any work; and an --out that holds an export
    of another scheme (which a rerun replaces only when asked for the same one) or files of the user's that the
    export would replace."""
    check_output_folder(args.out, "--out")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: torch sees no CUDA GPU; use --device cpu, or run where torch sees one")
    if args.group_size is not None and (args.group_size < 2 or args.group_size % 2):  # an odd group splits a byte
        raise ValueError(f"--group-size must be an even number of input channels >= 2, got {args.group_size}")
    weights = Path(args.weights)
    weights_folder = weights if weights.is_dir() else weights.parent
    if weights.exists() and args.out.resolve() == weights_folder.resolve():
        raise ValueError(
            f"--out {args.out} is the folder of --weights {args.weights}: the export beside the weights makes the "
            "folder no longer readable as weights (two weight files); choose another --out"
        )
    if args.scheme in QDQ_SCHEMES:
        try:
            _frames(args)
        except ValueError as err:
            raise ValueError(f"--max-frames {args.max_frames}: {err}") from None
        if args.frames > args.max_frames:
            raise ValueError(
                f"--frames {args.frames} is more than --max-frames {args.max_frames}: the graphs could not run the "
                "windows they are calibrated on; raise --max-frames or lower --frames"
            )
        check_opset(args.opset)
    held = quantized_scheme_in(args.out)
    if held is None and (args.out / MANIFEST_FILE).exists():
        held = "floating point (vggt-ros-build-engines)"
    if held is not None and held != args.scheme:
        raise ValueError(
            f"--out {args.out} holds an export for {held}, which this {args.scheme} run would replace; choose another "
            "--out, or remove it first"
        )
    check_export_entries(args.out, QUANTIZE_ENTRIES)


def main(argv: list[str] | None = None) -> int:
    args = parse_arguments(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    _check_options(args)  # before any work: a run can take hours
    plan = QuantizationPlan.load(args.plan, args.scheme) if args.plan is not None else None
    planned_group = plan.group_size if plan is not None else None
    if args.group_size is not None and planned_group is not None and args.group_size != planned_group:
        raise ValueError(
            f"--group-size {args.group_size} differs from the --plan's group_size {planned_group}, which its blocks "
            "were chosen for; drop --group-size (the plan's is used) or edit the plan"
        )
    try:
        config = RecipeConfig(
            args.scheme,
            args.protect,
            args.group_size or planned_group or DEFAULT_GROUP_SIZE,
            SearchConfig(args.search_steps, ObjectiveWeights()),
            args.compensation,
            plan=plan,
            strict=args.strict,
        )
        calibration = CalibrationConfig(args.frames, args.max_images, args.image_size, args.mode, args.topic)
    except ValueError as err:  # named by the options that set them
        raise ValueError(renamed(str(err), CONFIG_OPTIONS)) from None
    images = load_calibration_images(args.calibration, calibration)  # before the model: a bad set fails fast
    windows = calibration_windows(images, args.frames)
    model = load_model(args.weights, config=args.config, device=args.device)
    log.info("calibrating on %d images (%dx%d) in %d windows", len(images), *images.shape[-2:], len(windows))
    result = run_recipe(model, windows, config)
    try:
        with staged_entries(args.out, QUANTIZE_ENTRIES, keystone=MANIFEST_FILE) as folder:
            report = _write_export(model, result, args, images, windows, folder)
    except BaseException:
        # The search's result, unless a --plan gave it or the export is in place (a signal during the swap comes
        # after it).
        if args.plan is None and not _plan_in_place(args.out, result.plan):
            _keep_unexported_plan(args.out, result.plan)
        raise
    print(format_report(report))
    return 0


def _write_export(model: VGGT, result: RecipeResult, args, images, windows, folder: Path) -> dict[str, Any]:
    """Write the plan, the export and the report into ``folder`` (the run's staging folder); return the report."""
    fp16_bytes = fp16_weight_bytes(model)
    result.plan.save(folder / PLAN_FILE)
    export = (_export_w4a16 if args.scheme == W4A16 else _export_qdq)(model, result, args, windows, folder)
    layers = export["layers"]
    report = build_report(
        scheme=args.scheme,
        errors=export["errors"],
        fp16_weight_bytes=fp16_bytes,
        export_bytes=export["export_bytes"],
        weight_bytes=held_weight_bytes(
            fp16_bytes, layers["fp16_bytes"], layers["stored_bytes"], result.compensation_token
        ),
        sensitivity=result.sensitivity,
        protected=result.plan.protected_blocks,
        quantized_layers=layers,
        fp16_layers=result.plan.fp16_layers,
        choices=result.choices,
        compensation=result.compensation,
        measured_with=export["measured_with"],
        calibration={
            "source": str(args.calibration),
            "images": len(images),
            "windows": len(windows),
            "frames": args.frames,
            "height": int(images.shape[-2]),
            "width": int(images.shape[-1]),
            "weights": str(args.weights),
        },
    )
    write_report(folder, report)
    return report


def _plan_in_place(out: Path, plan: QuantizationPlan) -> bool:
    try:
        return QuantizationPlan.load(out / PLAN_FILE) == plan
    except ValueError:  # none, or not a plan (PlanError)
        return False


def _keep_unexported_plan(out: Path, plan: QuantizationPlan) -> None:
    """Keep the search's plan in ``out`` beside an earlier export, recorded as written (the next run's export
    replaces it), when this run's export failed or was stopped."""
    path = out / UNEXPORTED_PLAN_FILE
    try:
        out.mkdir(parents=True, exist_ok=True)
        plan.save(path)
        add_to_save_record(out, UNEXPORTED_PLAN_FILE)
    except OSError as err:
        log.error("the search's plan could not be kept in %s: %s", path, err)
        return
    log.error("the export did not complete; the search's plan is kept: rerun with --plan %s to skip the search", path)


def entry() -> None:
    run_command(main, STOPPED_MESSAGE)
