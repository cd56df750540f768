# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Recordings in and out: rosbag2 (mcap, sqlite3) read and written with rosbags, no ROS install needed."""
