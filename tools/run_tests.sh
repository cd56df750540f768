#!/usr/bin/env bash
# Runs the test suite inside a loopback-only network namespace: the node tests start DDS (rclpy),
# and discovery traffic must never leave the machine; and in a private mount namespace, where tests mount small
# filesystems that fill up (test/support/small_filesystem.py). Needs root (or unprivileged user namespaces).
# Usage: bash tools/run_tests.sh [pytest args...]        (after: bash tools/setup_env.sh .venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=${VGGT_ROS_PYTHON:-$ROOT/.venv/bin/python}
cd "$ROOT"
if [ "$(id -u)" -eq 0 ]; then NS=(unshare -nm); else NS=(unshare -rnm); fi
exec "${NS[@]}" sh -c 'ip link set lo up && exec "$0" -m pytest -ra "$@"' "$PY" "$@"
