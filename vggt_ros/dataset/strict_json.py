# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Standard JSON only: NaN and infinities become null, numpy values become plain numbers and lists.

Python's `json` writes NaN / Infinity by default, which is not JSON: strict parsers (JavaScript's, jq, Rust's
serde) reject the whole file. Here every value is converted first (NaN and +-inf -> null, anywhere in nested dicts,
lists, tuples, numpy scalars and arrays), and the result is always serialised with ``allow_nan=False``, so a value
the conversion missed raises instead of slipping out as non-standard text.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from vggt_ros.files import replace_atomically


def to_standard(value: Any) -> Any:
    """``value`` with numpy scalars / arrays turned into Python numbers / lists and non-finite floats into None."""
    if isinstance(value, dict):
        return {key: to_standard(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_standard(item) for item in value]
    if isinstance(value, np.ndarray):
        return to_standard(value.tolist())
    if isinstance(value, np.generic):
        return to_standard(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def dumps(value: Any, indent: int | None = 2) -> str:
    """Strict JSON text of ``value`` (see the module docstring). Raises TypeError for values JSON cannot hold."""
    return json.dumps(to_standard(value), allow_nan=False, indent=indent)


def write(path, value: Any, indent: int | None = 2) -> Path:
    """Write ``dumps(value)`` plus a newline to ``path`` atomically (`files.replace_atomically`); returns it."""
    text = dumps(value, indent) + "\n"
    path = Path(path)

    def write_text(temporary: Path) -> None:
        temporary.write_text(text, encoding="utf-8")

    replace_atomically(path, write_text)
    return path
