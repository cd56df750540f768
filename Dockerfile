# vggt_ros on ROS 2 Jazzy + CUDA 12 + TensorRT 10 + PyTorch (x86_64, NVIDIA GPU).
#
#   docker build -t vggt_ros .
#   docker run --rm -it --gpus all --network host -v $HOME/.cache/huggingface:/root/.cache/huggingface \
#       -v $PWD/engines:/engines vggt_ros \
#       ros2 launch vggt_ros reconstruct.launch.py image_topics:=/camera/image_raw rviz:=false
#
# TensorRT engines are specific to the GPU and TensorRT version, so they are built in the running container
# (the build has no GPU), once, into the mounted /engines:
#   docker run --rm --gpus all -v $PWD/engines:/engines vggt_ros \
#       ros2 run vggt_ros vggt-ros-build-engines --weights facebook/VGGT-1B --height 350 --width 518 --max-frames 16 --out /engines/350x518
# then launch with backend:=tensorrt engine_dir:=/engines/350x518.
#
# Not built in the development environment of this project (no Docker, no GPU there).
FROM nvidia/cuda:12.6.3-cudnn-runtime-ubuntu24.04

ARG ROS_DISTRO=jazzy
ARG TORCH_VERSION=2.7.1
ARG TORCH_INDEX=https://download.pytorch.org/whl/cu126
ARG TENSORRT_VERSION=10.9.0.34
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8 \
    LC_ALL=C.UTF-8 \
    ROS_DISTRO=${ROS_DISTRO} \
    PIP_BREAK_SYSTEM_PACKAGES=1 \
    PIP_NO_CACHE_DIR=1

# ROS 2 Jazzy from packages.ros.org (Ubuntu 24.04 "noble").
RUN apt-get update && apt-get install -y --no-install-recommends \
        ca-certificates curl gnupg lsb-release software-properties-common \
    && add-apt-repository -y universe \
    && curl -sSL https://raw.githubusercontent.com/ros/rosdistro/master/ros.key \
        -o /usr/share/keyrings/ros-archive-keyring.gpg \
    && echo "deb [arch=$(dpkg --print-architecture) signed-by=/usr/share/keyrings/ros-archive-keyring.gpg] http://packages.ros.org/ros2/ubuntu $(lsb_release -cs) main" \
        > /etc/apt/sources.list.d/ros2.list \
    && apt-get update && apt-get install -y --no-install-recommends \
        ros-${ROS_DISTRO}-ros-base \
        ros-${ROS_DISTRO}-launch-ros \
        ros-${ROS_DISTRO}-sensor-msgs \
        ros-${ROS_DISTRO}-geometry-msgs \
        ros-${ROS_DISTRO}-nav-msgs \
        ros-${ROS_DISTRO}-tf2-msgs \
        ros-${ROS_DISTRO}-std-srvs \
        ros-${ROS_DISTRO}-rviz2 \
        python3-pip python3-numpy python3-pil python3-pytest python3-colcon-common-extensions libusb-1.0-0 libgomp1 \
    && rm -rf /var/lib/apt/lists/*

# PyTorch (CUDA 12.6 build), TensorRT 10 (its Python wheel pulls the CUDA 12 libraries), then requirements.txt
# (ONNX tooling, Open3D, JPEG decoding, rosbags, GTSAM, ...) and onnxscript for the exporter.
# numpy stays the distribution's 1.26, which ROS 2 Jazzy's Python packages are built against.
COPY requirements.txt /tmp/requirements.txt
RUN pip install torch==${TORCH_VERSION} --index-url ${TORCH_INDEX} \
    && pip install "tensorrt-cu12==${TENSORRT_VERSION}" "numpy<2" onnxscript -r /tmp/requirements.txt

# This package, built with colcon.
WORKDIR /ws
COPY package.xml setup.py setup.cfg /ws/src/vggt_ros/
COPY resource /ws/src/vggt_ros/resource
COPY vggt_ros /ws/src/vggt_ros/vggt_ros
COPY launch /ws/src/vggt_ros/launch
COPY config /ws/src/vggt_ros/config
RUN . /opt/ros/${ROS_DISTRO}/setup.sh \
    && colcon build --packages-select vggt_ros \
    && rm -rf build log

RUN printf '#!/bin/bash\nset -e\nsource /opt/ros/%s/setup.bash\nsource /ws/install/setup.bash\nexec "$@"\n' "${ROS_DISTRO}" \
        > /ros_entrypoint.sh \
    && chmod +x /ros_entrypoint.sh
ENTRYPOINT ["/ros_entrypoint.sh"]
CMD ["ros2", "launch", "vggt_ros", "reconstruct.launch.py", "rviz:=false"]
