# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Swapping a model's linear layers for quantized ones, by module name, and putting the originals back.

Sensitivity analysis and scale search try many quantized versions of a few layers on one model; swapping modules
in place (rather than copying the 1.26 B-parameter model per trial) keeps one copy of the weights in memory.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterable, Iterator, Mapping

from torch import nn


def linear_layers(model: nn.Module, names: Iterable[str]) -> dict[str, nn.Linear]:
    """The `nn.Linear` modules called ``names``; ValueError naming any that is missing or not a plain linear."""
    layers = {}
    for name in names:
        try:
            module = model.get_submodule(name)
        except AttributeError:
            raise ValueError(f"the model has no layer {name}") from None
        if type(module) is not nn.Linear:
            raise ValueError(
                f"{name} is a {type(module).__name__}, not a floating-point nn.Linear; "
                "quantize the original model, not an already quantized one"
            )
        layers[name] = module
    return layers


def replace_modules(model: nn.Module, replacements: Mapping[str, nn.Module]) -> dict[str, nn.Module]:
    """Put each module of ``replacements`` (name -> module) in place; return the modules it replaced."""
    previous = {}
    for name, module in replacements.items():
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        previous[name] = getattr(parent, child)
        setattr(parent, child, module)
    return previous


@contextmanager
def replaced(model: nn.Module, replacements: Mapping[str, nn.Module]) -> Iterator[nn.Module]:
    """``model`` with ``replacements`` in place for the duration of the block; the originals come back after."""
    previous = replace_modules(model, replacements)
    try:
        yield model
    finally:
        replace_modules(model, previous)
