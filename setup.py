# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""vggt_ros: ament_python package; also installs with plain `pip install .` outside ROS.

The version and the license have one source, package.xml (what rosdep, bloom and colcon read); this file reads
them from there, and CHANGELOG.rst's newest section carries the same version (test/deploy/test_colcon.py checks that all
three agree, and test/deploy/test_copyright.py that every file's SPDX line names the license).
"""

import xml.etree.ElementTree as ElementTree
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "vggt_ros"
PACKAGE_XML = ElementTree.parse("package.xml").getroot()

setup(
    name=PACKAGE,
    version=PACKAGE_XML.findtext("version"),
    packages=find_packages(exclude=["test", "test.*", "bench"]),
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.launch.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.rviz")),
    ],
    python_requires=">=3.10",
    # torch is left to the user (CPU, CUDA or Jetson builds differ); ROS packages come from the ROS install.
    install_requires=["numpy>=1.26", "pillow>=10", "safetensors>=0.4"],
    extras_require={
        "hub": ["huggingface_hub>=0.24"],
        "export": ["onnx>=1.17", "onnxscript>=0.3", "onnxruntime>=1.20"],
        "mapping": ["open3d>=0.19"],
    },
    zip_safe=True,
    maintainer="vggt_ros maintainers",
    maintainer_email="vggt_ros@example.com",
    description="Real-time VGGT 3D perception for ROS 2: five-engine TensorRT pipeline, point clouds, depth, TF.",
    license=PACKAGE_XML.findtext("license"),
    entry_points={
        "console_scripts": [
            "reconstruct_node = vggt_ros.ros.main:main",
            "vggt-ros-build-engines = vggt_ros.export.cli:build_engines_entry",
            "vggt-ros-reconstruct = vggt_ros.offline:entry",
            "vggt-ros-quantize = vggt_ros.quantization.cli:entry",
        ],
    },
)
