# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Post-training quantization of VGGT (the QVGGT recipe), writing the quantized exports the runtime takes.

`vggt-ros-quantize` (`cli`) runs the recipe on a user's own images (`recipe`):

1. `calibration`: the images as windows, the floating-point reference outputs, and activation statistics from image
   tokens only;
2. `sensitivity`: each block's error when only it is quantized;
3. the mixed-precision plan (`vggt_ros.quantized_formats.plan`: fragile blocks keep FP16 weights except
   ``attn.proj``), JSON a person may edit;
4. `search`: per-block scales chosen against the task objective (`objective`);
5. `compensation`: the camera-information compensation token for the camera head;
6. `export`: W4A16 packed weights for the torch backend, or INT8 / FP8 Q/DQ ONNX graphs for ONNX Runtime and
   TensorRT (`qdq`), and `report`.

Helpers: `evaluation` runs a model over the calibration windows as the pipeline does, `quantizers` builds one
quantized layer per scheme and search parameter. What a quantized export is (the schemes, the packed INT4 layer, the
plan, the compensated camera head, the W4A16 file) lives in `vggt_ros.quantized_formats`, which the runtime imports;
nothing in the runtime imports this package. Nothing here is imported by ``import vggt_ros.quantization`` itself.
"""
