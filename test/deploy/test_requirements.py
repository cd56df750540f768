# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Every third-party module the package imports is declared where each route installs from: requirements.txt (pip,
the Docker image), requirements-dev.txt (tools/setup_env.sh, CI) or package.xml (ROS). The Docker image installed
a hand-kept list that lacked simplejpeg, gtsam and rosbags, so its node stopped at import."""

from __future__ import annotations

import ast
import re
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# An import name and the distribution that provides it, where they differ.
DISTRIBUTION = {"PIL": "pillow", "yaml": "pyyaml"}
# Installed apart from the requirement files, each as its comment in requirements.txt says.
INSTALLED_APART = {"torch", "tensorrt", "tf2_ros"}  # tf2_ros: used where ROS provides it, else a stand-in


def _imported_modules() -> set[str]:
    modules = set()
    for path in (ROOT / "vggt_ros").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    return modules - set(sys.stdlib_module_names) - {"vggt_ros"}


def _requirement_names(file: str) -> set[str]:
    names = set()
    for line in (ROOT / file).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line and not line.startswith("-"):
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower())
    return names


def _ros_packages() -> set[str]:
    return {element.text for element in ElementTree.parse(ROOT / "package.xml").getroot() if element.text}


def test_every_imported_module_is_a_requirement_or_a_ros_package():
    pip, ros = _requirement_names("requirements.txt"), _ros_packages()
    missing = sorted(
        module
        for module in _imported_modules() - INSTALLED_APART
        if DISTRIBUTION.get(module, module).lower() not in pip and module not in ros
    )
    assert missing == [], f"imported but in neither requirements.txt nor package.xml: {missing}"


def test_the_development_requirements_hold_every_runtime_requirement():
    dev = {name.removesuffix("-cpu") for name in _requirement_names("requirements-dev.txt")}  # open3d-cpu
    assert sorted(_requirement_names("requirements.txt") - dev) == []


def test_the_docker_image_installs_requirements_txt():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^COPY requirements\.txt ", dockerfile, flags=re.M), "requirements.txt is not copied in"
    assert re.search(r"pip install [^\n]*-r [^\n]*requirements\.txt", dockerfile), "nor installed"
