# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Checkpoint loading: Hugging Face id, local folder or file; safetensors or weights-only torch files."""

from __future__ import annotations

import logging
import pickle
import socket
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

import torch

from .config import VGGTConfig

log = logging.getLogger(__name__)

DEFAULT_HUB_ID = "facebook/VGGT-1B"
SKIPPED_PREFIXES = ("track_head.",)  # tracking is not part of this package
_WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin")
_HUB_FILES = ("model.safetensors", "model.pt")
# Connecting to the hub takes well under a second where there is a network; without one, fail after this long.
_HUB_PROBE_TIMEOUT_S = 3.0
_MARKER_KEY = "aggregator.camera_token"  # present in every VGGT checkpoint


class CheckpointError(ValueError):
    """A checkpoint that cannot be found, read, or does not match the model."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a state dict from a safetensors file (told by its content, whatever its suffix), or from a torch file with
    `weights_only=True` (no arbitrary unpickling)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"weights file not found: {path}")
    try:
        if _is_safetensors(path):
            from safetensors.torch import load_file

            return load_file(str(path))
        state = torch.load(path, map_location="cpu", weights_only=True)
    except CheckpointError:
        raise
    except pickle.UnpicklingError as e:  # torch's text suggests weights_only=False: running the file's code
        raise CheckpointError(
            f"{path} is a pickle that holds more than tensors, and is not unpickled (that could run any code in it); "
            "save its state dict with safetensors (safetensors.torch.save_file) and give that file"
        ) from e
    except Exception as e:  # corrupt or foreign files raise many types; report them all the same way
        raise CheckpointError(f"cannot read weights from {path}: {e}") from e
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} does not hold a state dict of tensors")
    return dict(state)


def _is_safetensors(path: Path) -> bool:
    """A safetensors file starts with its header's length (8 bytes, little-endian) and the JSON header's "{"."""
    with open(path, "rb") as file:
        start = file.read(9)
    return len(start) == 9 and start[8:9] == b"{" and 0 < int.from_bytes(start[:8], "little") < path.stat().st_size


def resolve_source(source: str | Path) -> tuple[Path, Path | None]:
    """Find (weights file, optional config.json) for a file, a folder or a Hugging Face id."""
    path = Path(source).expanduser()
    if path.is_file():
        return path, None
    if path.is_dir():
        return _weights_in_folder(path), (path / "config.json" if (path / "config.json").is_file() else None)
    if str(source).count("/") == 1 and not str(source).startswith((".", "/", "~")):
        return _download(str(source))
    raise CheckpointError(f"weights not found: {source!r} is neither a file, a folder nor a Hugging Face id")


def _weights_in_folder(folder: Path) -> Path:
    """The one checkpoint in a folder: a *.safetensors holding VGGT keys (headers only are read), else model.pt."""
    candidates = sorted(p for p in folder.iterdir() if p.suffix in _WEIGHT_SUFFIXES and p.is_file())
    problems = {p: _not_vggt_safetensors(p) for p in candidates if p.suffix == ".safetensors"}
    safetensors = [p for p, problem in problems.items() if problem is None]
    if len(safetensors) == 1:
        return safetensors[0]
    if not safetensors and (folder / "model.pt").is_file():
        return folder / "model.pt"
    found = ", ".join(p.name + (f" ({problems[p]})" if problems.get(p) else "") for p in candidates)
    raise CheckpointError(
        f"{folder} must hold exactly one VGGT *.safetensors file or a model.pt; found {found or 'no weight files'}. "
        "Pass the weights file itself instead."
    )


def _not_vggt_safetensors(path: Path) -> str | None:
    """None when ``path`` is a safetensors file holding VGGT's keys (its header alone is read), else why not."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return None if _MARKER_KEY in f.keys() else "no VGGT keys"
    except Exception as err:  # safetensors raises its own error types for a damaged file
        return f"unreadable: {str(err).splitlines()[0] if str(err) else type(err).__name__}"


def _download(repo_id: str) -> tuple[Path, Path | None]:
    """The hub checkpoint: from the local cache if it is there (works offline), else downloaded. Without a network,
    fail at once with what to do: the hub client would retry each file for about a minute."""
    hint = (
        f"On a machine with internet access run `hf download {repo_id} --local-dir VGGT-1B` (the Hugging Face "
        "command-line tool that huggingface_hub installs), "
        "copy that folder here and pass its path as the weights (a folder or the model file)."
    )
    try:
        from huggingface_hub import constants, hf_hub_download
    except ImportError:
        raise CheckpointError(f"cannot fetch {repo_id}: huggingface_hub is not installed. {hint}") from None

    def fetch(local_only: bool) -> tuple[Path, Path | None] | None:
        errors.clear()
        for filename in _HUB_FILES:
            try:
                weights = Path(hf_hub_download(repo_id, filename, local_files_only=local_only))
            except Exception as e:  # not cached, offline, missing file or gated repo: try the next name
                errors.append(f"{filename}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}")
                continue
            try:
                config = Path(hf_hub_download(repo_id, "config.json", local_files_only=local_only))
            except Exception:
                config = None
            return weights, config
        return None

    errors: list[str] = []
    cached = fetch(local_only=True)
    if cached is not None:
        return cached
    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(f"{repo_id} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set. {hint}")
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=_HUB_PROBE_TIMEOUT_S).close()
    except OSError as err:
        raise CheckpointError(f"cannot reach {constants.ENDPOINT} to download {repo_id} ({err}). {hint}") from None
    downloaded = fetch(local_only=False)
    if downloaded is not None:
        return downloaded
    raise CheckpointError(f"cannot download {repo_id} ({'; '.join(errors)}). {hint}")


def check_state_dict(state: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], source: object) -> None:
    """Raise one error listing every missing, unexpected and wrongly shaped key."""
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in set(state) & set(expected)
        if tuple(state[k].shape) != tuple(expected[k].shape)
    )
    if missing or unexpected or wrong:

        def listing(title: str, items: list[str]) -> str:
            shown = items[:20] + ([f"... and {len(items) - 20} more"] if len(items) > 20 else [])
            return f"\n  {title} ({len(items)}):\n    " + "\n    ".join(shown) if items else ""

        raise CheckpointError(
            f"weights in {source} do not match the VGGT configuration"
            + listing("missing", missing)
            + listing("unexpected", unexpected)
            + listing("wrong shape", wrong)
            + "\n  Check that the config matches the checkpoint (pass config= for non-default sizes)."
        )


def build_model_from_checkpoint(model_cls, source, config, device, dtype):
    weights_path, config_path = resolve_source(source)
    if config is None:
        config = VGGTConfig.from_json(config_path) if config_path else VGGTConfig()
    elif not isinstance(config, VGGTConfig):
        config = VGGTConfig.from_json(config)
    state = read_state_dict(weights_path)
    skipped = [k for k in state if k.startswith(SKIPPED_PREFIXES)]
    if skipped:
        log.info("skipping %d track_head tensors (tracking is not used by vggt_ros)", len(skipped))
        state = {k: v for k, v in state.items() if not k.startswith(SKIPPED_PREFIXES)}
    # Build on the meta device and adopt the loaded tensors, so the 1.26 B parameters are never allocated twice.
    with torch.device("meta"):
        model = model_cls(config)
    check_state_dict(state, model.state_dict(), weights_path)
    model.load_state_dict(state, strict=True, assign=True)
    log.info("loaded VGGT weights from %s", weights_path)
    return model.to(device=device, dtype=dtype).eval()
