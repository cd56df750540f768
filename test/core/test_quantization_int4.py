# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""INT4 group quantization: known answers, the nibble layout, the packed layer against the fake-quantized one, and
the bytes the packed weights take at VGGT-1B's layer sizes."""

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from vggt_ros.quantization.quantizers import awq_input_scale
from vggt_ros.quantized_formats.int4 import FakeInt4Linear, W4A16Linear, quantize_int4, unpack_int4
from vggt_ros.quantized_formats.plan import PlanError, group_size_for

# (out, in) of VGGT-1B linear layers, one per input width (the bytes per row depend on the width only): attention
# qkv and MLP fc2 of the 1024-wide DINOv2 and aggregator blocks, qkv and fc2 of the 2048-wide camera trunk.
VGGT_1B_LAYER_SHAPES = ((3072, 1024), (1024, 4096), (6144, 2048), (2048, 8192))


def test_power_of_two_groups_are_exact_and_other_scales_round_as_float16():
    weight = torch.tensor([[0.875, -0.25, 0.125, 0.0, -1.0, 0.5, 0.25, 0.0]])
    int4 = quantize_int4(weight, group_size=4)
    scale = np.float16(1.0 / 7.0)  # max |w| / 7 of the second group, stored as float16
    expected_q = [7, -2, 1, 0, *np.clip(np.round(np.array([-1.0, 0.5, 0.25, 0.0]) / np.float32(scale)), -8, 7)]
    assert int4.scales.dtype == torch.float16
    assert int4.scales.tolist() == [[0.125, float(scale)]]
    assert unpack_int4(int4.packed)[0].tolist() == expected_q
    # two's complement nibbles, even channel low: (7, -2) -> 0xE7, (1, 0) -> 0x01
    assert int4.packed[0, :2].tolist() == [0xE7, 0x01]


def test_unpacking_reads_every_byte_as_two_signed_nibbles():
    every_byte = torch.arange(256, dtype=torch.uint8).reshape(1, 256)
    values = unpack_int4(every_byte)[0].reshape(256, 2).numpy()
    b = np.arange(256)
    np.testing.assert_array_equal(values[:, 0], ((b & 15) ^ 8) - 8)
    np.testing.assert_array_equal(values[:, 1], ((b >> 4) ^ 8) - 8)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
@pytest.mark.parametrize("with_input_scale", [False, True])
def test_packed_layer_equals_the_fake_quantized_layer_bitwise(dtype, with_input_scale):
    torch.manual_seed(0)
    linear = torch.nn.Linear(256, 96)
    input_scale = torch.rand(256) + 0.5 if with_input_scale else None
    fake = FakeInt4Linear.from_linear(linear, 128, input_scale)
    packed = fake.packed().to(dtype)
    x = torch.randn(3, 7, 256).to(dtype)
    assert torch.equal(packed(x), fake.to(dtype)(x))
    assert (fake(x.float()) - linear(x.float())).abs().max() > 0  # it is quantized, not a copy


def test_input_scale_divides_activations_and_multiplies_weights():
    # W * s lies on the INT4 grid exactly, so the layer must reproduce the float layer: x / s @ (W * s)^T = x @ W^T.
    scale = torch.tensor([2.0, 0.5, 2.0, 0.5])
    on_grid = torch.tensor([[0.875, -0.25, 0.125, 0.5], [0.25, 0.375, -0.875, 0.0]])
    linear = torch.nn.Linear(4, 2)
    linear.weight.data = on_grid / scale
    x = torch.randn(5, 4)
    torch.testing.assert_close(FakeInt4Linear.from_linear(linear, 4, scale)(x), linear(x), rtol=1e-6, atol=1e-6)


def test_awq_scale_has_unit_geometric_mean_and_alpha_zero_means_none():
    means = torch.tensor([0.01, 0.1, 1.0, 10.0])
    assert awq_input_scale(means, 0.0) is None
    scale = awq_input_scale(means, 0.5)
    assert float(scale.max() * scale.min()) == pytest.approx(1.0)
    assert torch.all(scale[1:] > scale[:-1])  # larger activations get larger scales


def test_packed_weights_take_at_most_0_3x_their_fp16_bytes_at_vggt_1b_sizes(tmp_path):
    generator = torch.Generator().manual_seed(0)
    stored = fp16 = 0
    tensors = {}
    for index, (rows, columns) in enumerate(VGGT_1B_LAYER_SHAPES):
        weight = torch.randn(rows, columns, generator=generator) / columns**0.5
        layer = W4A16Linear.from_int4(quantize_int4(weight, group_size_for(columns, 128, f"layer{index}")), None, None)
        assert layer.storage_bytes <= 0.3 * 2 * rows * columns
        stored, fp16 = stored + layer.storage_bytes, fp16 + 2 * rows * columns
        tensors.update({f"{index}.{k}": v for k, v in layer.state_dict().items()})
    save_file(tensors, str(tmp_path / "packed.safetensors"))
    print(
        f"packed INT4 (group 128, FP16 scales): {stored / fp16:.4f}x the FP16 bytes of "
        f"{len(VGGT_1B_LAYER_SHAPES)} layers"
    )
    assert stored / fp16 <= 0.3
    assert (tmp_path / "packed.safetensors").stat().st_size <= 0.3 * fp16  # what a file really takes, header included


def test_stored_format_survives_dtype_conversions():
    layer = FakeInt4Linear.from_linear(torch.nn.Linear(128, 8), 128, torch.rand(128) + 0.5).packed()
    scales, input_scale = layer.weight_scales.clone(), layer.input_scale.clone()
    layer.to(torch.bfloat16).to(torch.float32)
    assert layer.weight_scales.dtype == torch.float16 and torch.equal(layer.weight_scales, scales)
    assert layer.input_scale.dtype == torch.float16 and torch.equal(layer.input_scale, input_scale)
    assert layer.packed_weight.dtype == torch.uint8 and layer.bias.dtype == torch.float32


def test_a_width_that_is_not_a_multiple_of_the_group_is_refused_with_the_layer_name():
    assert group_size_for(16, 128, "tiny") == 16  # narrower than a group: one group per row
    with pytest.raises(PlanError, match=r"aggregator.frame_blocks.0.mlp.fc2 has 200 input channels.*--group-size"):
        group_size_for(200, 128, "aggregator.frame_blocks.0.mlp.fc2")
    with pytest.raises(ValueError, match="groups of 128"):
        quantize_int4(torch.zeros(2, 200), 128)
