# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""On-disk cache of built engines, keyed by everything that makes a serialized engine valid.

Layout under the engine folder (default ``engines/``)::

    engines/
      timing-trt<version>-sm<major><minor>.cache   TensorRT timing cache, shared by every entry for that
                                                    TensorRT version and GPU (tactic timings do not depend
                                                    on weights or frame range, so rebuilds reuse them)
      <digest>/                                     one entry per EngineCacheKey
        dinov2.engine  aggregator.engine  camera_head.engine  depth_head.engine  point_head.engine
        metadata.json                               key fields, each engine's sha256, size and build time

A serialized engine is only valid for the exact TensorRT version and GPU architecture that built it, and it
bakes in the weights, the image size and the frame range, so all of those are in the key; the manifest's digest
covers, for a quantized export, its ``quantization`` section (scheme, plan and the digest of every scale), so
another plan or another calibration is another entry. ``metadata.json``
is rewritten atomically after each engine is built, so an interrupted build leaves at worst engines that
:func:`validate_entry` reports as unrecorded and rebuilds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Mapping

from ..files import write_bytes_atomically
from ..quantized_formats.schemes import QDQ_SCHEMES
from .io_contract import ExportManifest, FramesProfile, sha256_file

METADATA_FILE = "metadata.json"
METADATA_FORMAT = 1
ENGINE_SUFFIX = ".engine"
# What TensorRT builds: FP16 or FP32 kernels for a float export, and for a quantized (Q/DQ) export its scheme.
PRECISIONS = ("fp16", "fp32", *QDQ_SCHEMES)
_DIGEST_CHARS = 16


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def manifest_sha256(manifest: ExportManifest) -> str:
    """Digest of the export (I/O contract, opset, exporter versions, weights, model config, every graph's SHA-256,
    quantization plan and scales): a re-export is a new cache entry."""
    return hashlib.sha256(_canonical_json(manifest.to_manifest())).hexdigest()


@dataclass(frozen=True)
class EngineCacheKey:
    """Everything a set of serialized engines depends on. Equal keys mean interchangeable engines."""

    weights_sha256: str
    manifest_sha256: str
    height: int
    width: int
    frames_min: int
    frames_opt: int
    frames_max: int
    precision: str
    tensorrt_version: str
    compute_capability: tuple[int, int]

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")

    @classmethod
    def for_export(
        cls,
        manifest: ExportManifest,
        frames: FramesProfile,
        precision: str,
        tensorrt_version: str,
        compute_capability: tuple[int, int],
    ) -> EngineCacheKey:
        """The key for building ``manifest``'s graphs for ``frames`` on this TensorRT version and GPU."""
        scheme = manifest.quantization_scheme
        if precision in QDQ_SCHEMES and scheme != precision:
            holds = "not quantized" if scheme is None else f"quantized for {scheme}"
            raise ValueError(f"precision {precision!r} builds an export quantized for it; this export is {holds}")
        return cls(
            weights_sha256=manifest.weights_sha256,
            manifest_sha256=manifest_sha256(manifest),
            height=manifest.height,
            width=manifest.width,
            frames_min=frames.min,
            frames_opt=frames.opt,
            frames_max=frames.max,
            precision=precision,
            tensorrt_version=tensorrt_version,
            compute_capability=(int(compute_capability[0]), int(compute_capability[1])),
        )

    def to_dict(self) -> dict[str, Any]:
        fields = asdict(self)
        fields["compute_capability"] = list(self.compute_capability)
        return fields

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> EngineCacheKey:
        values = dict(fields)
        values["compute_capability"] = tuple(values["compute_capability"])
        return cls(**values)

    def digest(self) -> str:
        """Stable hex digest (sha256 of canonical JSON; identical in every process, unlike ``hash()``)."""
        return hashlib.sha256(_canonical_json(self.to_dict())).hexdigest()[:_DIGEST_CHARS]


@dataclass(frozen=True)
class CacheEntry:
    """Paths of one cache entry: ``<engine_dir>/<key digest>/``."""

    engine_dir: Path
    key: EngineCacheKey

    @property
    def root(self) -> Path:
        return self.engine_dir / self.key.digest()

    @property
    def metadata_path(self) -> Path:
        return self.root / METADATA_FILE

    @property
    def timing_cache_path(self) -> Path:
        major, minor = self.key.compute_capability
        return self.engine_dir / f"timing-trt{self.key.tensorrt_version}-sm{major}{minor}.cache"

    def engine_path(self, component: str) -> Path:
        return self.root / f"{component}{ENGINE_SUFFIX}"


def cache_entry(engine_dir: str | Path, key: EngineCacheKey) -> CacheEntry:
    """The entry for ``key`` under ``engine_dir`` (nothing is created on disk)."""
    return CacheEntry(Path(engine_dir), key)


def read_metadata(entry: CacheEntry) -> dict[str, Any] | None:
    """The entry's metadata, or None if it was never written. Raises ValueError if it is unreadable."""
    try:
        text = entry.metadata_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{entry.metadata_path} is not valid JSON ({err})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{entry.metadata_path} does not hold a JSON object")
    return metadata


def _stale_fields(recorded: Any, key: EngineCacheKey) -> list[str]:
    if not isinstance(recorded, Mapping):
        return ["key"]
    differing = [(name, value) for name, value in key.to_dict().items() if recorded.get(name) != value]
    return [f"{name}={recorded.get(name)!r} (now {value!r})" for name, value in differing]


def validate_entry(entry: CacheEntry, components: Iterable[str]) -> dict[str, str | None]:
    """Check each component's cached engine; map component -> None if usable, else the reason to rebuild it.

    Reasons cover: no metadata, unreadable metadata, metadata written for another key (stale), a component
    never recorded, a missing engine file, and a size or sha256 different from the recorded one (truncated
    or corrupted file). Reasons are phrased to follow "rebuilding <component>: ".
    """
    components = list(components)
    try:
        metadata = read_metadata(entry)
    except ValueError as err:
        return dict.fromkeys(components, f"unreadable cache metadata: {err}")
    if metadata is None:
        return dict.fromkeys(components, f"no cached engine ({entry.metadata_path} does not exist)")
    if metadata.get("format") != METADATA_FORMAT:
        return dict.fromkeys(components, f"cache metadata format {metadata.get('format')!r} is not {METADATA_FORMAT}")
    stale = _stale_fields(metadata.get("key"), entry.key)
    if stale:
        return dict.fromkeys(components, f"stale cache metadata, built for {', '.join(stale)}")
    engines = metadata.get("engines", {})
    return {name: _engine_problem(entry, name, engines.get(name)) for name in components}


def _engine_problem(entry: CacheEntry, component: str, record: Any) -> str | None:
    path = entry.engine_path(component)
    if not isinstance(record, Mapping) or "sha256" not in record or "size" not in record:
        return f"not recorded in {entry.metadata_path} (build never finished)"
    if not path.is_file():
        return f"engine file {path} is missing"
    size = path.stat().st_size
    if size != record["size"]:
        return f"engine file {path} is {size} bytes, expected {record['size']} (truncated or corrupt)"
    if sha256_file(path) != record["sha256"]:
        return f"engine file {path} does not match its recorded sha256 (corrupt)"
    return None


def record_engine(entry: CacheEntry, component: str, build_seconds: float) -> None:
    """Record a freshly written engine file (its sha256, size and build time) in the entry's metadata.

    Metadata for another key, or unreadable metadata, is replaced: those engines are being rebuilt anyway.
    """
    try:
        metadata = read_metadata(entry)
    except ValueError:
        metadata = None
    if metadata is None or metadata.get("format") != METADATA_FORMAT or _stale_fields(metadata.get("key"), entry.key):
        metadata = {"format": METADATA_FORMAT, "key": entry.key.to_dict(), "engines": {}}
    path = entry.engine_path(component)
    metadata["timing_cache"] = entry.timing_cache_path.name
    metadata["engines"][component] = {
        "file": path.name,
        "sha256": sha256_file(path),
        "size": path.stat().st_size,
        "build_seconds": round(float(build_seconds), 3),
        "built_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    write_bytes_atomically(entry.metadata_path, json.dumps(metadata, indent=2, sort_keys=True).encode("utf-8") + b"\n")
