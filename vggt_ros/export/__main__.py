# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
from .cli import export_entry

export_entry()
