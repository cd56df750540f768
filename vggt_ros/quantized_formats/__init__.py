# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The quantized formats: what a quantized model is, below both the runtime that runs it and the recipe that makes it.

`schemes` (the schemes and the backends that run them), `int4` (packed INT4 weights and the W4A16 linear layer),
`plan` (the mixed-precision plan, also stored in every quantized export), `compensated_head` (the camera head that
reads the compensation token), `layers` (swapping linear layers by name) and `w4a16_file` (the W4A16 export file,
written by `vggt_ros.quantization` and loaded by `vggt_ros.runtime`). This package imports only `vggt_ros.model` and
the atomic file writer, so `runtime/`, `export/` and `quantization/` all import it and none of them imports back up.
Nothing is imported by ``import vggt_ros.quantized_formats`` itself.
"""
