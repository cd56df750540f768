# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Test and benchmark support: synthetic scenes, test doubles, environment checks. Not installed."""
