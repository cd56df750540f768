# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Sensitivity and scale search, each against the same measurement made directly: quantize the layers by hand, run
the model, compare with the floating-point outputs."""

import pytest
import torch
from test_quantization_qdq import write_micro_model

from support.torch_threads import one_torch_thread  # noqa: F401 (autouse, module-wide)
from vggt_ros.model import VGGT
from vggt_ros.quantization.calibration import reference_pass
from vggt_ros.quantization.evaluation import window_outputs
from vggt_ros.quantization.objective import errors_vs_reference, task_loss
from vggt_ros.quantization.quantizers import parameter_grid, quantized_layer
from vggt_ros.quantization.search import SearchConfig, search_scales
from vggt_ros.quantization.sensitivity import measure_sensitivity, most_fragile
from vggt_ros.quantized_formats.layers import linear_layers, replaced
from vggt_ros.quantized_formats.plan import LINEAR_NAMES, QuantizationPlan

BLOCKS = ["aggregator.frame_blocks.1", "aggregator.global_blocks.2"]


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    model = VGGT.from_pretrained(write_micro_model(tmp_path_factory.mktemp("micro")))
    windows = [torch.rand(2, 3, 28, 28, generator=torch.Generator().manual_seed(seed)) for seed in (0, 1)]
    reference = reference_pass(model, windows, [f"{b}.{linear}" for b in BLOCKS for linear in LINEAR_NAMES])
    return model, windows, reference


def by_hand(model, windows, reference, scheme, layers_of_block, parameter):
    layers = {
        name: quantized_layer(
            scheme, name, layer, reference.statistics[name], parameter, 128 if scheme == "w4a16" else None
        )
        for name, layer in linear_layers(model, layers_of_block).items()
    }
    with replaced(model, layers):
        return window_outputs(model, windows)


@pytest.mark.parametrize("scheme", ["w4a16", "int8"])
def test_sensitivity_is_the_error_with_only_that_block_quantized(calibrated, scheme):
    model, windows, reference = calibrated
    table = measure_sensitivity(model, BLOCKS, scheme, 128 if scheme == "w4a16" else None, reference, windows)
    for row in table:
        outputs = by_hand(
            model,
            windows,
            reference,
            scheme,
            [f"{row.block}.{n}" for n in LINEAR_NAMES],
            0.0 if scheme == "w4a16" else 1.0,
        )
        errors = errors_vs_reference(outputs, reference.outputs)
        assert (row.camera_rel, row.depth_rel, row.points_rel) == pytest.approx(
            (errors["camera_rel"], errors["depth_rel"], errors["points_rel"]), rel=1e-9
        )
        assert row.score == pytest.approx(row.camera_rel + 0.1 * row.depth_rel + 0.1 * row.points_rel)
    assert torch.equal(window_outputs(model, windows)[0]["depth"], reference.outputs[0]["depth"])  # restored
    assert most_fragile(table, 1) == [max(table, key=lambda row: row.score).block]


@pytest.mark.parametrize("scheme", ["w4a16", "int8"])
def test_search_keeps_the_parameter_with_the_lowest_task_loss(calibrated, scheme):
    model, windows, reference = calibrated
    block = BLOCKS[0]
    plan = QuantizationPlan(scheme, {block: ("attn.qkv", "mlp.fc1")}, 128 if scheme == "w4a16" else None)
    layers, choices = search_scales(model, plan, reference, windows, SearchConfig(steps=3))
    losses = {
        parameter: task_loss(
            by_hand(model, windows, reference, scheme, plan.layer_names(), parameter), reference.outputs
        ).total
        for parameter in parameter_grid(scheme, 3)
    }
    assert [c.block for c in choices] == [block] and set(layers) == set(plan.layer_names())
    assert choices[0].loss == pytest.approx(min(losses.values()), rel=1e-9)
    assert losses[choices[0].parameter] == min(losses.values())
    assert len(set(losses.values())) > 1  # the parameter matters, so the choice is a real one
    assert all(type(layer) is torch.nn.Linear for layer in linear_layers(model, plan.layer_names()).values())
