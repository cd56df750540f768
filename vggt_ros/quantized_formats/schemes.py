# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The quantization schemes, what each one stores and the backends that can execute it.

* ``w4a16``: 4-bit weights (symmetric, groups of 128 input channels, FP16 scales) with 16-bit activations. Only the
  torch backend runs it: the packed weights are unpacked by torch in each linear layer, so no ONNX graph exists.
* ``int8`` and ``fp8``: 8-bit weights (per output channel) and 8-bit activations (per tensor, static scales from
  calibration), written as QuantizeLinear / DequantizeLinear nodes into the DINOv2 and aggregator ONNX graphs
  (explicit quantization). ONNX Runtime executes them on the CPU (dequantising to float32, so accuracy, not speed);
  TensorRT fuses them into INT8 or FP8 kernels.

This module is the single source of those facts: the runtime's precision names, the command line and the checks
for a scheme a backend cannot run all read it.
"""

from __future__ import annotations

W4A16 = "w4a16"
INT8 = "int8"
FP8 = "fp8"
SCHEMES = (W4A16, INT8, FP8)
QDQ_SCHEMES = (INT8, FP8)
SCHEME_BACKENDS = {W4A16: ("torch",), INT8: ("onnxruntime", "tensorrt"), FP8: ("onnxruntime", "tensorrt")}


class UnsupportedSchemeError(ValueError):
    """A quantization scheme asked of a backend that cannot execute it; the message names what can."""


def check_scheme(scheme: str) -> str:
    """``scheme`` if it is one of `SCHEMES`, else ValueError listing them."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown quantization scheme {scheme!r}; choose one of {list(SCHEMES)}")
    return scheme


def check_scheme_backend(scheme: str, backend: str) -> None:
    """Raise `UnsupportedSchemeError` unless ``backend`` executes ``scheme``."""
    check_scheme(scheme)
    if backend in SCHEME_BACKENDS[scheme]:
        return
    if scheme == W4A16:
        fix = (
            "use backend 'torch' with engine_dir set to the output folder of `vggt-ros-quantize --scheme w4a16`, "
            "or quantize with --scheme int8 or fp8 for the onnxruntime and tensorrt backends"
        )
    else:
        fix = (
            f"use backend 'onnxruntime' or 'tensorrt' with engine_dir set to the output folder of "
            f"`vggt-ros-quantize --scheme {scheme}`, or precision 'w4a16' for the torch backend"
        )
    raise UnsupportedSchemeError(
        f"precision {scheme!r} cannot run on the {backend} backend (it runs on "
        f"{' or '.join(SCHEME_BACKENDS[scheme])}); {fix}"
    )
