# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The camera-information compensation token (QVGGT section 3.3), built from the calibration camera tokens.

Calibration statistics leave the camera and register tokens out (their outlier activations would set the scales),
which costs the camera head the cues those tokens carry. The compensation token gives them back: a dataset-level
summary of the calibration camera tokens, appended to the camera tokens the camera head attends over.

Construction (QVGGT eq. 5-8): the calibration camera tokens ``c_i`` (the camera head's input, token 0 of the last
tapped aggregator layer, ``(N, 2C)``) are centred and their top-K principal directions ``U_K`` (K = 32) computed;
the token is the mean of the tokens projected onto that subspace, ``U_K U_K^T mean(c_i)``, scaled to the mean norm
of the patch tokens of the same layer. (Projecting the centred tokens instead would average to zero.) With fewer
than K + 1 calibration frames the subspace has fewer directions, all that the data spans.

`vggt_ros.quantized_formats.compensated_head.CompensatedCameraHead` is the camera head that reads the token (it is
part of the exported model's structure, so it lives with the quantized formats).
"""

from __future__ import annotations

import torch

DEFAULT_COMPONENTS = 32


class CompensationError(ValueError):
    """The calibration camera tokens cannot define a compensation token (too few, or all identical)."""


def compensation_token(
    camera_tokens: torch.Tensor, patch_token_norm: float, components: int = DEFAULT_COMPONENTS
) -> torch.Tensor:
    """The token ``(D,)`` from calibration camera tokens ``(N, D)`` and the patch tokens' mean norm.

    Raises `CompensationError` when the tokens span no direction (one frame, or identical tokens) or their mean has
    no component in the principal subspace.
    """
    if camera_tokens.ndim != 2 or components < 1 or not patch_token_norm > 0:
        raise ValueError(
            f"need camera tokens (N, D), components >= 1 and a positive patch-token norm; got "
            f"{tuple(camera_tokens.shape)}, {components}, {patch_token_norm}"
        )
    tokens = camera_tokens.double()
    mean = tokens.mean(dim=0)
    _, singular_values, directions = torch.linalg.svd(tokens - mean, full_matrices=False)
    tolerance = singular_values[0] * max(tokens.shape) * torch.finfo(torch.float64).eps  # sorted, largest first
    rank = int((singular_values > tolerance).sum())
    if rank == 0:
        raise CompensationError(
            f"the {len(tokens)} calibration camera tokens span no direction; the compensation "
            "token needs at least two calibration frames that differ"
        )
    basis = directions[: min(components, rank)]  # (K, D), orthonormal rows
    projected = basis.T @ (basis @ mean)
    norm = projected.norm()
    if not norm > 0:
        raise CompensationError("the mean camera token has no component along its principal directions")
    return (projected * (patch_token_norm / norm)).float()
