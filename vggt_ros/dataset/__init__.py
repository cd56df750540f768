# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Datasets out of a reconstruction: COLMAP sparse models, nerfstudio transforms, per-frame depth files."""
