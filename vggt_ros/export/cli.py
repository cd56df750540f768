# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Command-line entry points: `python -m vggt_ros.export` (ONNX only) and `vggt-ros-build-engines`."""

from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path
from typing import Any, Mapping

import torch

from ..arguments import path_argument
from ..model import VGGT
from ..output_folder import check_output_folder
from ..preprocess import check_image_size
from ..quantized_formats.plan import quantized_scheme_in
from ..quantized_formats.schemes import QDQ_SCHEMES
from ..runtime.io_contract import MANIFEST_FILE, ExportManifest, FramesProfile, ManifestError
from ..runtime.weights_source import load_model
from ..termination import run_command
from .folder import STOPPED_MESSAGE, check_export_entries
from .onnx_export import (
    EXPORT_ENTRIES,
    check_opset,
    export_onnx,
    model_config_record,
    package_version,
    state_dict_sha256,
)

log = logging.getLogger("vggt_ros.export")


# The export options' defaults. argparse leaves them None so that vggt-ros-build-engines can tell an option given from
# one left out: a quantized export brings its own size and frame range, and is not changed by these options.
DEFAULTS = {"weights": "facebook/VGGT-1B", "height": 350, "width": 518, "min_frames": 1, "max_frames": 8, "opset": 18}
# The options that decide an export; --opt-frames defaults to half of --max-frames.
EXPORT_OPTIONS = ("height", "width", "min_frames", "opt_frames", "max_frames", "opset")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--weights", help="hub id, folder or weights file (default: facebook/VGGT-1B)")
    parser.add_argument("--config", default=None, help="config.json for non-default model sizes")
    parser.add_argument("--height", type=int, help="model input height (multiple of the patch size; default: 350)")
    parser.add_argument("--width", type=int, help="model input width (multiple of the patch size; default: 518)")
    parser.add_argument("--min-frames", type=int, help="default: 1")
    parser.add_argument("--opt-frames", type=int, default=None, help="default: half of --max-frames")
    parser.add_argument("--max-frames", type=int, help="largest window the engines accept (default: 8)")
    parser.add_argument("--opset", type=int, help="default: 18")
    parser.add_argument(
        "--out",
        type=path_argument,
        default="engines/350x518",
        help="folder for the graphs, manifest and engines (default: %(default)s)",
    )


def _with_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """``args`` with `DEFAULTS` for the options not given."""
    values = vars(args)
    return argparse.Namespace(**{**values, **{name: v for name, v in DEFAULTS.items() if values[name] is None}})


def _check_export_options(args: argparse.Namespace) -> None:
    """The export's options, checked before the model loads (the exporter found a bad one after it, in torch's
    words)."""
    for option in ("height", "width"):
        check_image_size(f"--{option}", getattr(args, option), usual=DEFAULTS[option])
    check_opset(args.opset)
    try:
        _frames(args)
    except ValueError as err:
        raise ValueError(f"--min-frames, --opt-frames, --max-frames: {err}") from None
    if args.min_frames > 1:
        # A session sends each new frame set through DINOv2 on its own: one image per camera.
        log.warning(
            "--min-frames %d: these engines serve only sessions with at least %d cameras and loop closure off (each "
            "new frame set runs through the engines on its own, and a loop pass re-encodes 1 keyframe); other "
            "sessions need --min-frames 1",
            args.min_frames,
            args.min_frames,
        )


def _frames(args: argparse.Namespace) -> FramesProfile:
    opt = args.opt_frames if args.opt_frames is not None else max(args.min_frames, args.max_frames // 2)
    return FramesProfile(args.min_frames, opt, args.max_frames)


def export_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m vggt_ros.export", description="Export the five VGGT stages to ONNX."
    )
    _model_arguments(parser)
    args = _with_defaults(parser.parse_args(argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out
    check_output_folder(out, "--out")  # before the model loads (a minute for VGGT-1B)
    _refuse_to_replace_a_quantized_export(out)
    check_export_entries(out, EXPORT_ENTRIES)
    _check_export_options(args)
    model = load_model(args.weights, config=args.config)
    manifest = export_onnx(model, args.out, (args.height, args.width), _frames(args), args.opset)
    log.info("wrote %s/manifest.json (weights sha256 %s...)", args.out, manifest.weights_sha256[:12])
    return 0


def export_is_current(
    out: Path, model: VGGT, image_hw: tuple[int, int], frames: FramesProfile, opset: int
) -> str | None:
    """None when `out` already holds this export of `model`; otherwise why it must be (re)exported.

    Every graph is read to compare its SHA-256 with the manifest's: a graph changed since the export (a copy cut
    short, an export interrupted while its graphs were moved in) is not taken for the export."""
    if not (out / MANIFEST_FILE).exists():  # the manifest's own error tells the user to run this command
        return "no export there yet"
    try:
        manifest = ExportManifest.load(out)
        manifest.check_files(out, contents=True)
    except ManifestError as e:
        return str(e)
    differences = [
        name
        for name, ours, theirs in (
            ("weights", state_dict_sha256(model), manifest.weights_sha256),
            ("image size", tuple(image_hw), (manifest.height, manifest.width)),
            ("frame range", frames, manifest.frames),
            ("opset", opset, manifest.opset),
            ("vggt_ros version", package_version(), manifest.exporter.get("vggt_ros")),
        )
        if ours != theirs
    ]
    if manifest.model_config is None:
        differences.append("model config (not recorded by the vggt_ros that exported it)")
    elif changed := _changed_keys(model_config_record(model.config), manifest.model_config):
        differences.append(f"model config ({', '.join(changed)})")
    return f"existing export differs: {', '.join(differences)}" if differences else None


def _changed_keys(ours: Mapping[str, Any], theirs: Mapping[str, Any], prefix: str = "") -> list[str]:
    """The dotted keys of two configs whose values differ."""
    changed = []
    for key in sorted(set(ours) | set(theirs)):
        mine, recorded = ours.get(key), theirs.get(key)
        if isinstance(mine, Mapping) and isinstance(recorded, Mapping):
            changed += _changed_keys(mine, recorded, f"{prefix}{key}.")
        elif mine != recorded:
            changed.append(prefix + key)
    return changed


def build_engines_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vggt-ros-build-engines",
        description="Export VGGT to ONNX, build the TensorRT FP16 engines and verify them; skips work already done. "
        "With --precision int8 or fp8 it builds the engines of the quantized export vggt-ros-quantize wrote to --out.",
    )
    _model_arguments(parser)
    parser.add_argument(
        "--backend",
        choices=("tensorrt", "onnxruntime"),
        default="tensorrt",
        help="what builds and runs the graphs: TensorRT engines (a CUDA GPU), or ONNX Runtime on them as they are "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--precision", choices=("fp16", "fp32", *QDQ_SCHEMES), default="fp16", help="(default: %(default)s)"
    )
    parser.add_argument(
        "--workspace-gib", type=float, default=8.0, help="TensorRT builder workspace, GiB (default: %(default)s)"
    )
    parser.add_argument(
        "--verify", action="store_true", help="print the relative error against torch FP32 on seeded random images"
    )
    parser.add_argument("--verify-frames", type=int, default=None, help="frames for --verify (default: opt)")
    args = parser.parse_args(argv)
    if args.verify_frames is not None and args.verify_frames < 1:
        raise ValueError(f"--verify-frames must be 1 or more, got {args.verify_frames}")
    if not (math.isfinite(args.workspace_gib) and args.workspace_gib > 0):
        raise ValueError(f"--workspace-gib must be a positive number of GiB, got {args.workspace_gib}")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = args.out
    check_output_folder(out, "--out")  # before the model loads (a minute for VGGT-1B)
    if args.backend == "tensorrt":  # before the export (minutes for VGGT-1B), not after it
        from ..runtime.tensorrt_backend import check_tensorrt_available

        check_tensorrt_available()
    quantized = _quantized_export(out, args.precision)
    if quantized is None:
        args = _with_defaults(args)
        _check_export_options(args)
        _check_verify_frames(args.verify_frames, _frames(args))
        check_export_entries(out, EXPORT_ENTRIES)
        model = load_model(args.weights, config=args.config)
        _export_unless_current(model, out, (args.height, args.width), _frames(args), args.opset)
    else:
        _check_quantized_options(args, quantized, out)
        _check_verify_frames(args.verify_frames, quantized.frames)
        log.info("using the %s export in %s (written by vggt-ros-quantize)", args.precision, out)
        args = _with_defaults(args)
        model = load_model(args.weights, config=args.config) if args.verify else None
        given = state_dict_sha256(model) if model is not None else quantized.weights_sha256
        if given != quantized.weights_sha256:
            raise ValueError(
                f"--weights {args.weights} are not the weights {out} was quantized from (weights sha256 "
                f"{given[:12]}..., the export's {quantized.weights_sha256[:12]}...): --verify would compare the export "
                "with another model; give the --weights (and --config) vggt-ros-quantize had"
            )

    from ..runtime import Pipeline

    options = {"workspace_gib": args.workspace_gib} if args.backend == "tensorrt" else {}
    pipeline = Pipeline.from_engine_dir(out, backend=args.backend, precision=args.precision, **options)
    log.info("%s engines ready in %s", args.backend, out)
    if args.verify:
        verify(model, pipeline, pipeline.image_hw, args.verify_frames or pipeline.frames.opt)
    return 0


def _check_verify_frames(verify_frames: int | None, frames: FramesProfile) -> None:
    """--verify-frames must fit the engines' frame range: checked before the export (minutes for VGGT-1B)."""
    if verify_frames is None or frames.min <= verify_frames <= frames.max:
        return
    fix = (
        f"pass --verify-frames {frames.max} or less (or export with --max-frames {verify_frames})"
        if verify_frames > frames.max
        else f"pass --verify-frames {frames.min} or more (or export with --min-frames {verify_frames})"
    )
    raise ValueError(
        f"--verify-frames {verify_frames} is outside the engines' frame range {frames.min}..{frames.max}; {fix}"
    )


def _export_unless_current(
    model: VGGT, out: Path, image_hw: tuple[int, int], frames: FramesProfile, opset: int
) -> None:
    reason = export_is_current(out, model, image_hw, frames, opset)
    if reason is None:
        log.info("ONNX export in %s is up to date", out)
        return
    log.info("exporting ONNX to %s (%s)", out, reason)
    start = time.perf_counter()
    export_onnx(model, out, image_hw, frames, opset)
    log.info("export done in %.1f s", time.perf_counter() - start)


def _existing_export(out: Path) -> ExportManifest | None:
    """The export in ``out``; None when there is none, or only a manifest.json that does not read as one."""
    try:
        return ExportManifest.load(out)
    except ManifestError:
        return None


def _quantized_export(out: Path, precision: str) -> ExportManifest | None:
    """The quantized export in ``out`` if ``precision`` asks for it; None when there is none and none is asked for.
    A quantized export is never overwritten by a float one, nor made up: both mismatches raise."""
    manifest = _existing_export(out)
    scheme = None if manifest is None else manifest.quantization_scheme
    held = scheme or quantized_scheme_in(out)  # w4a16 writes no manifest: its plan.json says
    if precision in QDQ_SCHEMES and scheme != precision:
        holds = "no quantized export" if scheme is None else f"an export quantized for {scheme}"
        # vggt-ros-quantize keeps any other export it finds in its --out: name a folder of its own then
        target = out if manifest is None and held is None else "<another folder>"
        raise ValueError(
            f"--precision {precision} builds the engines of a quantized export, but {out} holds {holds}; "
            f"run `vggt-ros-quantize --scheme {precision} --out {target}` first"
            + ("" if target == out else " and pass that folder as --out")
        )
    if precision not in QDQ_SCHEMES and held is not None:
        use = (
            f"pass --precision {held} to build its engines"
            if held in QDQ_SCHEMES  # w4a16 has no engines: the torch backend runs it (precision w4a16)
            else f"it has no engines (the torch backend runs it, with precision {held})"
        )
        raise ValueError(
            f"{out} holds an export quantized for {held} (written by vggt-ros-quantize); {use}; pass another --out "
            f"for a {precision} export"
        )
    return None if scheme is None else manifest


def _check_quantized_options(args: argparse.Namespace, manifest: ExportManifest, out: Path) -> None:
    """A quantized export is built as vggt-ros-quantize wrote it: export options given that differ from it are
    refused, and --weights and --config, which only --verify uses, are said to be unused without it."""
    exported = {
        "height": manifest.height,
        "width": manifest.width,
        "min_frames": manifest.frames.min,
        "opt_frames": manifest.frames.opt,
        "max_frames": manifest.frames.max,
        "opset": manifest.opset,
    }
    differing = [
        f"--{name.replace('_', '-')} {getattr(args, name)} (the export's: {exported[name]})"
        for name in EXPORT_OPTIONS
        if getattr(args, name) is not None and getattr(args, name) != exported[name]
    ]
    if differing:
        raise ValueError(
            f"{out} holds an export quantized for {manifest.quantization_scheme} by vggt-ros-quantize, which "
            f"{', '.join(differing)} cannot change: its engines are built as it is; leave these options out, or run "
            f"`vggt-ros-quantize --scheme {manifest.quantization_scheme}` again for another size or frame range "
            "(--image-size, --max-frames, --opset)"
        )
    if not args.verify and (args.weights is not None or args.config is not None):
        log.warning(
            "--weights and --config are not used without --verify: the %s export in %s holds the model "
            "vggt-ros-quantize was given (with --verify they are the FP32 reference)",
            manifest.quantization_scheme,
            out,
        )


def _refuse_to_replace_a_quantized_export(out: Path) -> None:
    manifest = _existing_export(out)
    held = (manifest.quantization_scheme if manifest is not None else None) or quantized_scheme_in(out)
    if held is not None:  # w4a16 writes no manifest: its plan.json says
        raise ValueError(
            f"--out {out} holds an export quantized for {held} by vggt-ros-quantize (with its plan.json and "
            "report.json), which this export would replace; choose another --out, or remove "
            f"{out} first to replace it"
        )


def verify(model: VGGT, pipeline, image_hw: tuple[int, int], num_frames: int) -> dict[str, float]:
    """Run both on the same seeded images and print each output's relative error against torch FP32."""
    from ..runtime.verify import format_errors, relative_errors

    generator = torch.Generator().manual_seed(0)
    images = torch.rand(num_frames, 3, *image_hw, generator=generator)
    device = pipeline.device if pipeline.device.type == "cuda" else torch.device("cpu")
    if device.type == "cuda":  # a float32 reference means true float32 matmuls
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    with torch.inference_mode():
        reference = model.to(device)(images.to(device))
        outputs = pipeline(images)
    errors = relative_errors(outputs, reference)
    # Random images, not photographs: a quantized export's report.json (its calibration windows) reads lower.
    log.info(
        "relative error vs torch FP32 on %d random images of %dx%d: %s", num_frames, *image_hw, format_errors(errors)
    )
    return errors


def export_entry() -> None:
    run_command(export_main, STOPPED_MESSAGE)


def build_engines_entry() -> None:
    run_command(build_engines_main, STOPPED_MESSAGE)
