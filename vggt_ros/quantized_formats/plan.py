# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The mixed-precision plan: which linear layers of which transformer blocks are quantized.

QVGGT (section 3.2) finds that blocks differ widely in how much quantization they tolerate, and within a block the
attention output projection (``attn.proj``) tolerates it best. A plan therefore lists, per block, the linear layers
that are quantized; a fragile ("protected") block keeps its other layers in floating point and quantizes only
``attn.proj``, and a block the plan does not name is not quantized at all.

The plan is JSON that a person may edit::

    {"format": 1, "scheme": "w4a16", "group_size": 128,
     "blocks": {"aggregator.frame_blocks.0": ["attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2"],
                "aggregator.frame_blocks.14": ["attn.proj"], ...}}

Block names are the model's own module names (``aggregator.patch_embed.blocks.<i>`` for DINOv2,
``aggregator.frame_blocks.<i>`` / ``aggregator.global_blocks.<i>`` for the aggregator, ``camera_head.trunk.<i>``
for the camera head), so `QuantizationPlan.check_against` can validate a hand-edited plan against the real model
and name every block that does not exist. W4A16 may quantize all three; INT8 and FP8 only the blocks of the two
stages whose ONNX graphs carry quantize/dequantize nodes (DINOv2 and the aggregator); the DPT heads are never
quantized.

Groups: W4A16 scales each run of ``group_size`` input channels of a row separately. A layer narrower than the group
size (the tiny test model has 16 channels) uses one group per row. A layer whose width is wider but not a multiple of
the group (192 channels in groups of 128) cannot be packed: by default `vggt-ros-quantize` keeps it in FP16 and lists
it under ``fp16_layers`` (`QuantizationPlan.keeping_fp16`); with ``--strict`` it is rejected with the layer's name.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from torch import nn

from vggt_ros.files import replace_atomically

from .schemes import QDQ_SCHEMES, W4A16, check_scheme

PLAN_FORMAT = 1
PLAN_FILE = "plan.json"
DEFAULT_GROUP_SIZE = 128
LINEAR_NAMES = ("attn.qkv", "attn.proj", "mlp.fc1", "mlp.fc2")
# QVGGT keeps fragile blocks in floating point except this layer, the block's least sensitive one.
PROTECTED_BLOCK_LINEARS = ("attn.proj",)
# The model's block lists and the stage (engine) each runs in.
BLOCK_LISTS = (
    ("aggregator.patch_embed.blocks", "dinov2"),
    ("aggregator.frame_blocks", "aggregator"),
    ("aggregator.global_blocks", "aggregator"),
    ("camera_head.trunk", "camera_head"),
)
SCHEME_STAGES = {scheme: ("dinov2", "aggregator") for scheme in QDQ_SCHEMES}
SCHEME_STAGES[W4A16] = ("dinov2", "aggregator", "camera_head")
_PLAN_NOTE = (
    "blocks: block name -> its linear layers that are quantized (any of attn.qkv, attn.proj, mlp.fc1, mlp.fc2); "
    "layers not listed, and blocks not named, keep floating-point weights. Edit freely and pass the file back "
    "with vggt-ros-quantize --plan."
)


class PlanError(ValueError):
    """A plan that is malformed or names blocks or layers the model does not have."""


def block_stage(block: str) -> str:
    """The stage a block runs in, from its name (``aggregator.frame_blocks.3`` -> ``aggregator``)."""
    stages = dict(BLOCK_LISTS)
    prefix = block.rsplit(".", 1)[0]
    if prefix not in stages:
        raise PlanError(f"{block!r} is not a block name; block names start with one of {list(stages)}")
    return stages[prefix]


def split_layer_name(layer: str) -> tuple[str, str]:
    """``aggregator.frame_blocks.3.attn.qkv`` -> (``aggregator.frame_blocks.3``, ``attn.qkv``)."""
    block, _, linear = layer.rpartition(".")
    block, _, parent = block.rpartition(".")
    return block, f"{parent}.{linear}"


def model_blocks(model: nn.Module) -> dict[str, str]:
    """Every transformer block of ``model``: name -> stage, in execution order.

    DINOv2 blocks first, then the aggregator's frame and global blocks interleaved as they run, then the camera
    trunk. Names are relative to the VGGT model (before `compensated_head.CompensatedCameraHead` wraps the camera head).
    """
    lists = {prefix: len(model.get_submodule(prefix)) for prefix, _ in BLOCK_LISTS}
    names = [f"aggregator.patch_embed.blocks.{i}" for i in range(lists["aggregator.patch_embed.blocks"])]
    for i in range(lists["aggregator.frame_blocks"]):
        names += [f"aggregator.frame_blocks.{i}", f"aggregator.global_blocks.{i}"]
    names += [f"camera_head.trunk.{i}" for i in range(lists["camera_head.trunk"])]
    return {name: block_stage(name) for name in names}


def scheme_blocks(model: nn.Module, scheme: str) -> tuple[str, ...]:
    """The blocks ``scheme`` may quantize, in execution order."""
    stages = SCHEME_STAGES[check_scheme(scheme)]
    return tuple(name for name, stage in model_blocks(model).items() if stage in stages)


def group_size_for(in_features: int, group_size: int, layer: str) -> int:
    """The group a layer with ``in_features`` input channels uses: ``group_size``, or the whole row if narrower."""
    group = min(group_size, in_features)
    if in_features % group:
        raise PlanError(
            f"layer {layer} has {in_features} input channels, not a multiple of the group size {group_size}; "
            f"choose a group size that divides {in_features} (--group-size), or leave the layer out of the plan"
        )
    return group


def quantized_scheme_in(folder: Path) -> str | None:
    """The scheme of the vggt-ros-quantize export in ``folder`` (its plan.json's, every scheme writes one), or None
    when it holds none. A plan.json that cannot be read counts as one ("unknown"): nothing may replace what may be
    an export."""
    path = Path(folder) / PLAN_FILE
    if not path.exists():
        return None
    try:
        scheme = json.loads(path.read_text()).get("scheme")
    except (OSError, ValueError, AttributeError):
        return "unknown"
    return scheme if isinstance(scheme, str) else "unknown"


def scheme_conflict(plan_scheme: Any, scheme: str) -> str:
    """What to say when a plan for ``plan_scheme`` is given to quantize with ``scheme``."""
    group_size = DEFAULT_GROUP_SIZE if scheme == W4A16 else "null"
    return (
        f"the plan is for {plan_scheme} but the scheme asked for is {scheme}; quantize with --scheme {plan_scheme}, "
        f"or set the plan's scheme to {scheme} (and its group_size to {group_size})"
    )


def ungroupable_layers(model: nn.Module, layers: Iterable[str], group_size: int) -> tuple[str, ...]:
    """The ``layers`` whose input channels are more than ``group_size`` and not a multiple of it: W4A16 cannot pack
    them (a narrower layer uses one group per row). Names the model does not have are left to `check_against`."""
    ungroupable = []
    for name in layers:
        try:
            width = model.get_submodule(name).in_features
        except AttributeError:
            continue
        if width % min(group_size, width):
            ungroupable.append(name)
    return tuple(ungroupable)


def _ranges(names: Iterable[str]) -> str:
    """'aggregator.frame_blocks.0-23, camera_head.trunk.0-3' for a list of indexed names."""
    indices: dict[str, list[int]] = {}
    for name in names:
        prefix, index = name.rsplit(".", 1)
        indices.setdefault(prefix, []).append(int(index))
    return ", ".join(f"{prefix}.{min(i)}-{max(i)}" for prefix, i in indices.items())


@dataclass(frozen=True)
class QuantizationPlan:
    """Block name -> the names of its quantized linear layers (a tuple, in `LINEAR_NAMES` order).

    ``group_size``: input channels per W4A16 scale (None for INT8 / FP8, which scale whole output channels).
    ``fp16_layers``: full names of layers of the planned blocks that keep FP16 weights because their input channels
    do not split into groups of ``group_size`` (`ungroupable_layers`); a record for the reader, never quantized.
    """

    scheme: str
    blocks: Mapping[str, tuple[str, ...]]
    group_size: int | None = DEFAULT_GROUP_SIZE
    fp16_layers: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_scheme(self.scheme)
        if self.scheme == W4A16:
            if (
                isinstance(self.group_size, bool)
                or not isinstance(self.group_size, int)
                or self.group_size < 2
                or self.group_size % 2
            ):
                raise PlanError(f"group_size must be an even integer >= 2 for w4a16, got {self.group_size!r}")
        elif self.group_size is not None:
            raise PlanError(
                f"group_size applies to w4a16 only; {self.scheme} scales whole output channels, "
                f"set it to null (got {self.group_size!r})"
            )
        if not isinstance(self.blocks, Mapping):
            raise PlanError(f"blocks must map block names to lists of layer names, got {type(self.blocks).__name__}")
        blocks = {}
        for block, layers in self.blocks.items():
            if not isinstance(block, str) or isinstance(layers, str) or not isinstance(layers, Iterable):
                raise PlanError(f"blocks[{block!r}] must be a list of layer names, got {layers!r}")
            layers = tuple(layers)
            unknown = [layer for layer in layers if layer not in LINEAR_NAMES]
            if unknown or not layers or len(set(layers)) != len(layers):
                raise PlanError(
                    f"blocks[{block!r}] = {list(layers)}: list each of {list(LINEAR_NAMES)} at most once, at least "
                    f"one of them{f' (unknown: {unknown})' if unknown else ''}; remove the block to keep it unquantized"
                )
            blocks[block] = tuple(name for name in LINEAR_NAMES if name in layers)
        object.__setattr__(self, "blocks", blocks)
        if not blocks:
            raise PlanError(
                "the plan quantizes nothing (its blocks are empty); name at least one block with its layers, "
                "or quantize without --plan to let vggt-ros-quantize choose them"
            )
        if isinstance(self.fp16_layers, str) or not all(isinstance(name, str) for name in self.fp16_layers):
            raise PlanError(f"fp16_layers must be a list of layer names, got {self.fp16_layers!r}")
        object.__setattr__(self, "fp16_layers", tuple(self.fp16_layers))
        both = sorted(set(self.fp16_layers) & set(self.layer_names()))
        if both:
            raise PlanError(f"layers {both} are listed both as quantized (blocks) and as fp16_layers; keep one")

    @property
    def protected_blocks(self) -> tuple[str, ...]:
        """Blocks that keep some of their layers in floating point."""
        return tuple(block for block, layers in self.blocks.items() if layers != LINEAR_NAMES)

    def layer_names(self) -> tuple[str, ...]:
        """Full module names of every quantized linear layer, e.g. ``aggregator.frame_blocks.0.attn.qkv``."""
        return tuple(f"{block}.{layer}" for block, layers in self.blocks.items() for layer in layers)

    def check_against(self, model: nn.Module) -> None:
        """Raise `PlanError` naming every block the model does not have, or that this scheme cannot quantize, and
        every fp16_layers entry that is no linear layer of the model."""
        existing = model_blocks(model)
        allowed = SCHEME_STAGES[self.scheme]
        missing = [block for block in self.blocks if block not in existing]
        if missing:
            raise PlanError(
                f"the plan names blocks that do not exist in this model: {missing}; its blocks are {_ranges(existing)}"
            )
        elsewhere = [block for block in self.blocks if existing[block] not in allowed]
        if elsewhere:
            raise PlanError(
                f"the plan names blocks {elsewhere} of stages that {self.scheme} keeps in floating point; "
                f"{self.scheme} quantizes only the {', '.join(allowed)} stages "
                f"({_ranges(scheme_blocks(model, self.scheme))})"
            )
        if self.scheme == W4A16:
            for name in self.layer_names():
                group_size_for(model.get_submodule(name).in_features, self.group_size, name)
        linears = {name for name, module in model.named_modules() if isinstance(module, nn.Linear)}
        unknown = [name for name in self.fp16_layers if name not in linears]
        if unknown:  # they were reported as kept in FP16
            raise PlanError(f"the plan's fp16_layers name layers this model does not have: {unknown}")

    def keeping_fp16(self, layers: Iterable[str]) -> "QuantizationPlan":
        """This plan with ``layers`` taken out of its blocks (a block left with none is dropped) and recorded in
        ``fp16_layers``."""
        layers = set(layers)
        blocks = {
            block: kept
            for block, names in self.blocks.items()
            if (kept := tuple(name for name in names if f"{block}.{name}" not in layers))
        }
        moved = tuple(name for name in self.layer_names() if name in layers)
        return QuantizationPlan(self.scheme, blocks, self.group_size, self.fp16_layers + moved)

    def to_json(self) -> dict[str, Any]:
        data = {
            "format": PLAN_FORMAT,
            "scheme": self.scheme,
            "group_size": self.group_size,
            "note": _PLAN_NOTE,
            "blocks": {block: list(layers) for block, layers in self.blocks.items()},
        }
        if self.fp16_layers:
            data["fp16_layers"] = list(self.fp16_layers)
        return data

    @classmethod
    def from_json(cls, data: Any, source: str = "plan", scheme: str | None = None) -> "QuantizationPlan":
        """Parse `to_json`'s form; extra keys (such as ``note``) are ignored. Raises `PlanError` naming ``source``.

        ``scheme``: the scheme the caller quantizes with; a plan for another one is refused as such, before its
        scheme-specific fields (``group_size``) are judged. A missing ``group_size`` is the scheme's default.
        """
        if not isinstance(data, Mapping):
            raise PlanError(f"{source}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != PLAN_FORMAT:
            raise PlanError(
                f"{source}: format {data.get('format')!r} is not {PLAN_FORMAT}; write the plan again "
                "with vggt-ros-quantize"
            )
        missing = [key for key in ("scheme", "blocks") if key not in data]
        if missing:
            raise PlanError(f"{source}: missing {missing}")
        if scheme is not None and data["scheme"] != scheme:
            raise PlanError(f"{source}: {scheme_conflict(data['scheme'], scheme)}")
        fp16_layers = data.get("fp16_layers", [])
        if not isinstance(fp16_layers, list):
            raise PlanError(f"{source}: fp16_layers must be a list of layer names, got {fp16_layers!r}")
        group_size = data.get("group_size", DEFAULT_GROUP_SIZE if data["scheme"] == W4A16 else None)
        try:
            return cls(data["scheme"], data["blocks"], group_size, tuple(fp16_layers))
        except ValueError as err:
            raise PlanError(f"{source}: {err}") from None

    def sha256(self) -> str:
        """Digest of the plan's content (not of its note or formatting)."""
        content = {"scheme": self.scheme, "group_size": self.group_size, "blocks": self.to_json()["blocks"]}
        if self.fp16_layers:  # absent when empty, so plans without such layers keep their digests
            content["fp16_layers"] = list(self.fp16_layers)
        return hashlib.sha256(json.dumps(content, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

    def save(self, path: str | Path) -> None:
        text = json.dumps(self.to_json(), indent=1) + "\n"
        replace_atomically(Path(path), lambda temporary: temporary.write_text(text, encoding="utf-8"))

    @classmethod
    def load(cls, path: str | Path, scheme: str | None = None) -> "QuantizationPlan":
        """The plan in the JSON file ``path`` (see `from_json` for ``scheme``)."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise PlanError(f"cannot read the plan {path}: {err.strerror or err}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise PlanError(f"{path} is not valid JSON: {err}") from None
        return cls.from_json(data, str(path), scheme)


def default_plan(
    scheme: str, blocks: Sequence[str], fragile: Iterable[str], group_size: int | None = DEFAULT_GROUP_SIZE
) -> QuantizationPlan:
    """Every block of ``blocks`` fully quantized, except the ``fragile`` ones: only `PROTECTED_BLOCK_LINEARS`."""
    fragile = set(fragile)
    unknown = sorted(fragile - set(blocks))
    if unknown:
        raise PlanError(f"fragile blocks {unknown} are not among the blocks being planned")
    return QuantizationPlan(
        scheme,
        {block: PROTECTED_BLOCK_LINEARS if block in fragile else LINEAR_NAMES for block in blocks},
        group_size if scheme == W4A16 else None,
    )
