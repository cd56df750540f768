# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The camera head that reads the compensation token (QVGGT section 3.3; `vggt_ros.quantization.compensation` builds
the token from calibration data).

`CompensatedCameraHead` appends the token as one more sequence element of the camera head's input: the trunk's
self-attention mixes it into every frame's camera token (the trunk has no positional encoding, so the position at
the end carries no meaning), and its own output is dropped. The token is a buffer, so it travels with the weights
into the W4A16 export and, as a constant, into the camera-head ONNX graph.
"""

from __future__ import annotations

import torch
from torch import nn


class CompensatedCameraHead(nn.Module):
    """Wraps a camera head: ``forward(camera_tokens (B, S, 2C)) -> (iterations, B, S, 9)`` with the token appended."""

    def __init__(self, head: nn.Module, token: torch.Tensor) -> None:
        super().__init__()
        self.head = head
        self.register_buffer("compensation_token", token.detach().reshape(1, 1, -1).clone())

    def forward(self, camera_tokens: torch.Tensor) -> torch.Tensor:
        frames = camera_tokens.shape[1]
        extra = self.compensation_token.to(camera_tokens.dtype).expand(camera_tokens.shape[0], 1, -1)
        return self.head(torch.cat((camera_tokens, extra), dim=1))[:, :, :frames]
