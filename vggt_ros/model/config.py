# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Typed configuration of the VGGT network. Defaults are facebook/VGGT-1B.

Every configuration is checked when it is built, against what the network code assumes (positive sizes, widths that
split into heads, four increasing tapped layers that end at the aggregator's last, ...): a bad value is reported by
its key here, not as an error deep in the model or half-way through an export.
"""

from __future__ import annotations

import json
import math
import numbers
from dataclasses import asdict, dataclass, field, fields
from os import PathLike
from typing import Any, Callable, ClassVar, Mapping


class ConfigError(ValueError):
    """A configuration value the network cannot be built with; `key` is its dotted name."""

    def __init__(self, key: str, problem: str, source: str | PathLike | None = None) -> None:
        super().__init__(f"{source}: {key} {problem}" if source is not None else f"{key} {problem}")
        self.key, self.problem = key, problem

    def located(self, source: str | PathLike, key: str) -> "ConfigError":
        """The same problem, reported for the file ``source`` under the name ``key`` it has there."""
        return ConfigError(key, self.problem, source)


def _invalid(key: str, requirement: str, value: Any) -> ConfigError:
    return ConfigError(key, f"must be {requirement}, got {value!r}")


def _is_integer(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)  # JSON true is no size


def _is_finite(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _positive_int(value: Any, key: str) -> int:
    if not (_is_integer(value) and value > 0):
        raise _invalid(key, "a positive integer", value)
    return int(value)


def _count(value: Any, key: str) -> int:
    if not (_is_integer(value) and value >= 0):
        raise _invalid(key, "an integer >= 0", value)
    return int(value)


def _finite(value: Any, key: str) -> float:
    if not _is_finite(value):
        raise _invalid(key, "a finite number", value)
    return float(value)


def _positive(value: Any, key: str) -> float:
    if not (_is_finite(value) and value > 0):
        raise _invalid(key, "a finite number > 0", value)
    return float(value)


def _items(value: Any, key: str, count: int, accept: Callable[[Any], bool], requirement: str) -> tuple:
    """``value`` as a tuple of ``count`` items that all pass ``accept`` (a string is no list of characters)."""
    if not (isinstance(value, (list, tuple)) and len(value) == count and all(accept(v) for v in value)):
        raise _invalid(key, requirement, value)
    return tuple(value)


def _rgb_mean(value: Any, key: str) -> tuple[float, ...]:
    return tuple(float(v) for v in _items(value, key, 3, _is_finite, "3 finite numbers (R, G, B)"))


def _rgb_std(value: Any, key: str) -> tuple[float, ...]:
    divisor = _items(value, key, 3, lambda v: _is_finite(v) and v > 0, "3 finite numbers > 0 (R, G, B)")
    return tuple(float(v) for v in divisor)


def _dpt_features(value: Any, key: str) -> int:
    # The fusion output has features // 2 channels and gets a sin/cos embedding of u and v: 4 equal parts.
    if not (_is_integer(value) and value > 0 and value % 8 == 0):
        raise _invalid(key, "a positive multiple of 8 (its half gets a sin/cos embedding of u and v)", value)
    return int(value)


def _dpt_channels(value: Any, key: str) -> tuple[int, ...]:
    # Each projected map gets a sin/cos embedding of u and v: its channels split into 4 equal parts.
    requirement = "4 positive multiples of 4 (each map gets a sin/cos embedding of u and v)"
    return tuple(int(v) for v in _items(value, key, 4, lambda v: _is_integer(v) and v > 0 and v % 4 == 0, requirement))


def _tapped_layers(value: Any, key: str) -> tuple[int, ...]:
    # The aggregator hands its tapped layers over in layer order, under the names of this list in its order.
    requirement = "4 increasing aggregator layer indices >= 0"
    layers = tuple(int(v) for v in _items(value, key, 4, lambda v: _is_integer(v) and v >= 0, requirement))
    if any(a >= b for a, b in zip(layers, layers[1:])):
        raise _invalid(key, requirement, value)
    return layers


def _instance_of(cls: type) -> Callable[[Any, str], Any]:
    def check(value: Any, key: str) -> Any:
        if not isinstance(value, cls):
            raise _invalid(key, f"an instance of {cls.__name__}", value)
        return value

    return check


def _checked(default: Any, check: Callable[[Any, str], Any]) -> Any:
    """A dataclass field whose value ``check(value, key)`` validates and normalises on construction."""
    return field(default=default, metadata={"check": check})


class _Checked:
    """Runs the check of every field on construction; `_SECTION` is the field of `VGGTConfig` holding the class."""

    _SECTION: ClassVar[str] = ""

    def __post_init__(self) -> None:
        prefix = f"{self._SECTION}." if self._SECTION else ""
        for item in fields(self):
            # frozen: the normalised value (a tuple for a list, a float for an int) replaces the given one
            object.__setattr__(self, item.name, item.metadata["check"](getattr(self, item.name), prefix + item.name))


@dataclass(frozen=True)
class EncoderConfig(_Checked):
    """DINOv2 ViT patch embed with register tokens (`aggregator.patch_embed`)."""

    _SECTION: ClassVar[str] = "encoder"

    depth: int = _checked(24, _positive_int)
    num_heads: int = _checked(16, _positive_int)
    mlp_ratio: float = _checked(4.0, _positive)
    num_register_tokens: int = _checked(4, _count)
    layernorm_eps: float = _checked(1e-6, _positive)
    # the positional table was trained for a 37x37 patch grid (518x518 pixels)
    pos_embed_grid: int = _checked(37, _positive_int)


@dataclass(frozen=True)
class AggregatorConfig(_Checked):
    """Alternating frame/global attention blocks."""

    _SECTION: ClassVar[str] = "aggregator"

    depth: int = _checked(24, _positive_int)
    num_heads: int = _checked(16, _positive_int)
    mlp_ratio: float = _checked(4.0, _positive)
    num_register_tokens: int = _checked(4, _count)
    rope_freq: float = _checked(100.0, _positive)
    layernorm_eps: float = _checked(1e-5, _positive)
    qk_norm_eps: float = _checked(1e-5, _positive)
    image_mean: tuple[float, float, float] = _checked((0.485, 0.456, 0.406), _rgb_mean)
    image_std: tuple[float, float, float] = _checked((0.229, 0.224, 0.225), _rgb_std)


@dataclass(frozen=True)
class CameraHeadConfig(_Checked):
    _SECTION: ClassVar[str] = "camera_head"

    trunk_depth: int = _checked(4, _positive_int)
    num_heads: int = _checked(16, _positive_int)
    mlp_ratio: float = _checked(4.0, _positive)
    num_iterations: int = _checked(4, _positive_int)
    layernorm_eps: float = _checked(1e-5, _positive)
    adaln_eps: float = _checked(1e-6, _positive)


@dataclass(frozen=True)
class DPTHeadConfig(_Checked):
    """Shared by the depth head and the point head; they differ only in output channels and activation."""

    _SECTION: ClassVar[str] = "dpt_head"

    features: int = _checked(256, _dpt_features)
    out_channels: tuple[int, int, int, int] = _checked((256, 512, 1024, 1024), _dpt_channels)
    intermediate_layer_idx: tuple[int, int, int, int] = _checked((4, 11, 17, 23), _tapped_layers)
    head_features_2: int = _checked(32, _positive_int)
    pos_embed_ratio: float = _checked(0.1, _finite)
    pos_embed_omega_0: float = _checked(100.0, _positive)
    layernorm_eps: float = _checked(1e-5, _positive)


@dataclass(frozen=True)
class VGGTConfig(_Checked):
    patch_size: int = _checked(14, _positive_int)
    embed_dim: int = _checked(1024, _positive_int)
    encoder: EncoderConfig = field(default_factory=EncoderConfig, metadata={"check": _instance_of(EncoderConfig)})
    aggregator: AggregatorConfig = field(
        default_factory=AggregatorConfig, metadata={"check": _instance_of(AggregatorConfig)}
    )
    camera_head: CameraHeadConfig = field(
        default_factory=CameraHeadConfig, metadata={"check": _instance_of(CameraHeadConfig)}
    )
    dpt_head: DPTHeadConfig = field(default_factory=DPTHeadConfig, metadata={"check": _instance_of(DPTHeadConfig)})

    def __post_init__(self) -> None:
        super().__post_init__()
        self._check_head_widths()
        self._check_tapped_layers()

    def _check_head_widths(self) -> None:
        """Attention splits its width evenly into heads; the aggregator's 2-D RoPE also splits each head in quarters."""
        dim = self.embed_dim
        if dim % self.encoder.num_heads:
            raise _invalid("encoder.num_heads", f"a divisor of embed_dim ({dim})", self.encoder.num_heads)
        if dim % (4 * self.aggregator.num_heads):
            raise _invalid(
                "aggregator.num_heads",
                f"a divisor of embed_dim ({dim}) that leaves heads of a multiple of 4 channels (2-D RoPE)",
                self.aggregator.num_heads,
            )
        if 2 * dim % self.camera_head.num_heads:
            raise _invalid(
                "camera_head.num_heads",
                f"a divisor of the camera head's width, 2 * embed_dim ({2 * dim})",
                self.camera_head.num_heads,
            )

    def _check_tapped_layers(self) -> None:
        """The camera head reads the last tapped layer, and the official one reads the aggregator's last layer."""
        last = self.aggregator.depth - 1
        if self.dpt_head.intermediate_layer_idx[-1] != last:
            raise ConfigError(
                "dpt_head.intermediate_layer_idx",
                f"must end at the aggregator's last layer, {last} (aggregator.depth - 1), which the camera head reads, "
                f"got {self.dpt_head.intermediate_layer_idx!r}",
            )

    @property
    def patch_start_idx(self) -> int:
        """Index of the first patch token: one camera token, then the register tokens."""
        return 1 + self.aggregator.num_register_tokens

    @property
    def tapped_layers(self) -> tuple[int, ...]:
        """Aggregator layers the heads read; the camera head reads the last of them."""
        return self.dpt_head.intermediate_layer_idx

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, path: str | PathLike) -> "VGGTConfig":
        """Read the schema of `fixtures/vggt_tiny/config.json` (official constructor arguments), or the Hugging Face
        repo's `VGGT(...)` keyword arguments.

        Raises `ConfigError` (a ValueError) naming the file, the key, what it must be and what it is, when a value is
        missing or unusable; ValueError when the file is not a JSON object.
        """
        raw = _read_json_object(path)
        try:
            if "aggregator" not in raw:
                return cls._from_hub_kwargs(raw)
            return cls._from_official_schema(raw)
        except ConfigError as err:
            raise err.located(path, _file_key(err.key)) from None

    @classmethod
    def _from_hub_kwargs(cls, raw: Mapping[str, Any]) -> "VGGTConfig":
        """The Hugging Face repo's config.json holds only `VGGT(...)` keyword arguments; accept the default ones."""
        default = cls()
        expected = {"img_size": 518, "patch_size": default.patch_size, "embed_dim": default.embed_dim}
        for key, value in raw.items():
            if key.startswith("enable_"):
                if not isinstance(value, bool):
                    raise _invalid(key, "true or false", value)
                continue  # head switches: the heads this package needs are always built
            if key not in expected:
                raise ConfigError(
                    key, f"is not a VGGT(...) argument this loader reads; it reads {sorted(expected)} and enable_*"
                )
            if not (_is_integer(value) and value == expected[key]):
                raise _invalid(
                    key,
                    f"{expected[key]} in a config of VGGT(...) arguments, which is read for VGGT-1B only "
                    "(give other sizes in the schema of fixtures/vggt_tiny/config.json)",
                    value,
                )
        return default

    @classmethod
    def _from_official_schema(cls, raw: Mapping[str, Any]) -> "VGGTConfig":
        pe, ag, cam, dep = (_json_object(raw, name) for name, _ in _OFFICIAL_SECTIONS.values())
        encoder = _section_fields(EncoderConfig, pe, "encoder")
        if "pos_embed_grid" not in encoder:
            encoder["pos_embed_grid"] = _trained_grid(pe)
        config = cls(
            patch_size=_required(raw, "patch_size"),
            embed_dim=_required(raw, "embed_dim"),
            encoder=EncoderConfig(**encoder),
            aggregator=AggregatorConfig(**_section_fields(AggregatorConfig, ag, "aggregator")),
            camera_head=CameraHeadConfig(**_section_fields(CameraHeadConfig, cam, "camera_head")),
            dpt_head=DPTHeadConfig(**_section_fields(DPTHeadConfig, dep, "dpt_head")),
        )
        _check_point_head(raw, dep)
        _check_official_sizes(config, raw)
        return config


# The official schema: the JSON object holding each section of `VGGTConfig`, and the keys it must hold (the
# others default to VGGT-1B's). The point head's object must agree with the depth head's (`_check_point_head`).
_OFFICIAL_SECTIONS = {
    "encoder": ("patch_embed", ("embed_dim", "depth", "num_heads", "mlp_ratio", "num_register_tokens")),
    "aggregator": ("aggregator", ("embed_dim", "depth", "num_heads", "mlp_ratio", "num_register_tokens", "rope_freq")),
    "camera_head": ("camera_head", ("dim_in", "trunk_depth", "num_heads", "mlp_ratio")),
    "dpt_head": ("depth_head", ("dim_in", "features", "out_channels", "intermediate_layer_idx")),
}


def _file_key(key: str) -> str:
    """The name a key of `VGGTConfig` (``encoder.depth``) has in the official schema (``patch_embed.depth``)."""
    section, dot, rest = key.partition(".")
    return _OFFICIAL_SECTIONS[section][0] + dot + rest if dot and section in _OFFICIAL_SECTIONS else key


def _read_json_object(path: str | PathLike) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except OSError as err:
        raise ValueError(f"cannot read the VGGT config {path}: {err.strerror or err}") from None
    except ValueError as err:  # not JSON, or not UTF-8
        raise ValueError(f"{path} is not a JSON VGGT config: {err}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{path} must hold a JSON object (a VGGT config), got a JSON {type(raw).__name__}")
    return raw


def _json_object(raw: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = _required(raw, name)
    if not isinstance(value, dict):
        raise _invalid(name, "a JSON object", value)
    return value


def _required(values: Mapping[str, Any], key: str, section: str = "") -> Any:
    if key not in values:
        raise ConfigError(f"{section}.{key}" if section else key, "is missing")
    return values[key]


def _section_fields(cls: type, values: Mapping[str, Any], section: str) -> dict[str, Any]:
    """The arguments of ``cls`` in the official schema's object ``values`` for `VGGTConfig`'s field ``section``."""
    name, required = _OFFICIAL_SECTIONS[section]
    for key in required:
        _required(values, key, name)
    return {item.name: values[item.name] for item in fields(cls) if item.name in values}


def _trained_grid(patch_embed: Mapping[str, Any]) -> int:
    """The patch grid the positional table was trained for, from the training image and patch sizes."""
    img_size = _positive_int(_required(patch_embed, "img_size", "patch_embed"), "patch_embed.img_size")
    patch_size = _positive_int(_required(patch_embed, "patch_size", "patch_embed"), "patch_embed.patch_size")
    if img_size < patch_size:
        raise _invalid("patch_embed.img_size", f"at least patch_embed.patch_size ({patch_size})", img_size)
    return img_size // patch_size


def _check_official_sizes(config: VGGTConfig, raw: Mapping[str, Any]) -> None:
    """The widths and patch sizes the official schema repeats per section must be the one of the network."""
    width, patch = config.embed_dim, config.patch_size
    for section, key, expected, meaning in (
        ("patch_embed", "embed_dim", width, f"embed_dim ({width}): VGGT has one width"),
        ("aggregator", "embed_dim", width, f"embed_dim ({width}): VGGT has one width"),
        ("camera_head", "dim_in", 2 * width, f"2 * embed_dim ({2 * width}): the heads read two blocks' tokens"),
        ("depth_head", "dim_in", 2 * width, f"2 * embed_dim ({2 * width}): the heads read two blocks' tokens"),
        ("point_head", "dim_in", 2 * width, f"2 * embed_dim ({2 * width}): the heads read two blocks' tokens"),
        ("patch_embed", "patch_size", patch, f"patch_size ({patch}): VGGT has one patch size"),
        ("depth_head", "patch_size", patch, f"patch_size ({patch}): VGGT has one patch size"),
        ("point_head", "patch_size", patch, f"patch_size ({patch}): VGGT has one patch size"),
    ):
        values = raw.get(section) or {}
        if key in values and not (_is_integer(values[key]) and values[key] == expected):
            raise _invalid(f"{section}.{key}", meaning, values[key])


def _check_point_head(raw: Mapping[str, Any], depth_head: Mapping[str, Any]) -> None:
    """This implementation builds both DPT heads from one `DPTHeadConfig`: the point head must agree with the depth
    head wherever it says something (an absent or null point_head is the depth head's)."""
    point_head = raw.get("point_head")
    if point_head is None:
        return
    if not isinstance(point_head, dict):
        raise _invalid("point_head", "a JSON object or null", point_head)
    for item in fields(DPTHeadConfig):
        shared = depth_head.get(item.name, item.default)
        if point_head.get(item.name, shared) != shared:
            raise _invalid(
                f"point_head.{item.name}",
                f"depth_head.{item.name} ({shared!r}): both heads share it here",
                point_head[item.name],
            )
