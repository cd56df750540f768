# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The quantization report: ``report.json`` and the text `vggt-ros-quantize` prints.

``report.json`` holds at least ``{"scheme", "error_vs_fp32": {"depth_rel", "points_rel", "camera_rel"},
"weight_bytes", "fp16_weight_bytes", "block_sensitivity": [...], "fp16_layers": [...]}``; errors are in percent
(``error_unit``), the seed's relative L1 error against the floating-point model on the calibration windows.
``weight_bytes`` counts the weights as the runtime holds them (`export.held_weight_bytes`), ``export_bytes`` the
files written. The printed report gives the sensitivity table, then the final error, then the weights' memory, and
ends by saying plainly that the figures hold only for the images and weights it was given. ``fp16_layers`` names
the layers of planned blocks that keep FP16 weights because their width does not split into W4A16 groups (as the
plan does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from vggt_ros.dataset import strict_json

from .search import BlockChoice
from .sensitivity import BlockSensitivity

REPORT_FILE = "report.json"
CAVEAT = (
    "These figures hold only for the calibration images and the weights given to vggt-ros-quantize: other scenes or "
    "other weights can behave differently, and figures from random weights say nothing about a trained model's "
    "accuracy. Quantize with images like the ones the robot will see."
)


def build_report(
    *,
    scheme: str,
    errors: Mapping[str, float],
    weight_bytes: int,
    fp16_weight_bytes: int,
    export_bytes: int,
    sensitivity: Sequence[BlockSensitivity],
    protected: Sequence[str],
    quantized_layers: Mapping[str, int],
    fp16_layers: Sequence[str],
    choices: Sequence[BlockChoice],
    compensation: Mapping[str, Any],
    calibration: Mapping[str, Any],
    measured_with: str,
) -> dict[str, Any]:
    """The report's JSON object (see the module docstring for the required keys)."""
    protected = set(protected)
    return {
        "scheme": scheme,
        "error_vs_fp32": {key: float(errors[key]) for key in ("depth_rel", "points_rel", "camera_rel")},
        "error_unit": "percent",
        "error_measured_with": measured_with,
        "weight_bytes": int(weight_bytes),
        "fp16_weight_bytes": int(fp16_weight_bytes),
        "export_bytes": int(export_bytes),
        "quantized_layers": dict(quantized_layers),
        "fp16_layers": list(fp16_layers),
        "block_sensitivity": [{**s.to_json(), "protected": s.block in protected} for s in sensitivity],
        "scale_search": [choice.to_json() for choice in choices],
        "compensation_token": dict(compensation),
        "calibration": dict(calibration),
        "caveat": CAVEAT,
    }


def _size(count: int) -> str:
    return f"{count / 1e9:.3f} GB" if count >= 1e8 else f"{count / 1e6:.3f} MB"


def format_report(report: Mapping[str, Any]) -> str:
    """The printed report (plain text, one table and a few lines)."""
    lines = [
        "Per-block sensitivity: error vs FP32 (%) with only that block quantized (* kept in FP16 but attn.proj)",
        f"{'block':<36}{'camera':>10}{'depth':>10}{'points':>10}{'score':>10}",
    ]
    for row in report["block_sensitivity"]:
        name = row["block"] + (" *" if row["protected"] else "")
        lines.append(
            f"{name:<36}{row['camera_rel']:>10.3g}{row['depth_rel']:>10.3g}{row['points_rel']:>10.3g}"
            f"{row['score']:>10.3g}"
        )
    errors, calibration = report["error_vs_fp32"], report["calibration"]
    lines.append("")
    lines.append(
        f"Final error vs FP32 ({report['scheme']}, {report['error_measured_with']}; {calibration['images']} "
        f"images in {calibration['windows']} windows at {calibration['height']}x{calibration['width']}): "
        f"depth {errors['depth_rel']:.3g} %, points {errors['points_rel']:.3g} %, "
        f"camera {errors['camera_rel']:.3g} %"
    )
    layers = report["quantized_layers"]
    lines.append(
        f"Weights as the runtime holds them: {_size(report['weight_bytes'])} against "
        f"{_size(report['fp16_weight_bytes'])} in FP16 ({report['weight_bytes'] / report['fp16_weight_bytes']:.3f}x);"
        f" the {layers['count']} quantized layers: {_size(layers['stored_bytes'])} against "
        f"{_size(layers['fp16_bytes'])} ({layers['stored_bytes'] / max(layers['fp16_bytes'], 1):.3f}x); "
        f"export files {_size(report['export_bytes'])}"
    )
    if report["fp16_layers"]:
        lines.append(
            f"Kept in FP16 (input channels not a multiple of the group size): {len(report['fp16_layers'])} layers, "
            f"{', '.join(report['fp16_layers'])}"
        )
    token = report["compensation_token"]
    if token.get("mode") == "off":
        lines.append("Compensation token: off")
    elif "reason" in token:
        lines.append(f"Compensation token: not used ({token['reason']})")
    else:
        lines.append(
            f"Compensation token: {'kept' if token['kept'] else 'left out'} ({token['mode']}; task loss "
            f"{token['task_loss_with']:.4g} with it, {token['task_loss_without']:.4g} without)"
        )
    lines += ["", report["caveat"]]
    return "\n".join(lines)


def write_report(directory: str | Path, report: Mapping[str, Any]) -> Path:
    """``<directory>/report.json``, standard JSON (a non-finite error is written as null), written atomically."""
    return strict_json.write(Path(directory) / REPORT_FILE, dict(report), indent=1)
