# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""The package as a ROS user gets it: `colcon build` into a fresh workspace, then the install tree alone.

The workspace lives in a temporary folder whose src/ links to this checkout, and colcon (from PyPI: colcon-core,
colcon-ros, colcon-python-setup-py) builds it with the interpreter running the tests, so nothing is written into
the checkout and nothing is fetched. The tests then use only what a user's `source install/setup.sh` gives:
the executable `ros2 run vggt_ros reconstruct_node` would start, the ament index that `ros2 launch` and
`get_package_share_directory` read, and the installed package metadata. The node is started from the install
tree, so this module starts DDS: it fails (with the command to use) outside a loopback-only network namespace.
"""

import importlib.metadata
import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest
from ament_index_python.packages import get_package_share_directory
from catkin_pkg.changelog import get_changelog_from_path

from conftest import TINY
from support.netns import require_loopback_only
from support.node_process import start_then_interrupt

pytestmark = [pytest.mark.ros, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = "vggt_ros"
PACKAGE_XML = ElementTree.parse(ROOT / "package.xml").getroot()
BUILD_TIMEOUT_S = 120
START_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A colcon workspace with this checkout as its only package, built; returns the workspace folder."""
    root = tmp_path_factory.mktemp("colcon_ws")
    (root / "src").mkdir()
    (root / "src" / PACKAGE).symlink_to(ROOT, target_is_directory=True)
    # COLCON_HOME in the workspace: a developer's own colcon defaults or mixins must not change this build.
    environment = {**os.environ, "COLCON_HOME": str(root / "colcon_home")}
    command = [sys.executable, "-m", "colcon", "--log-base", "log", "build", "--base-paths", "src"]
    command += ["--build-base", "build", "--install-base", "install", "--event-handlers", "console_direct-"]
    result = subprocess.run(command, cwd=root, env=environment, capture_output=True, text=True, timeout=BUILD_TIMEOUT_S)
    assert result.returncode == 0, f"colcon build failed:\n{result.stdout}\n{result.stderr}"
    assert f"Finished <<< {PACKAGE}" in result.stdout, result.stdout  # built this package (and only found this one)
    return root


@pytest.fixture(scope="module")
def sourced(workspace) -> dict[str, str]:
    """The environment after `. install/setup.sh`, as a user's shell has it before `ros2 run` or `ros2 launch`."""
    listing = subprocess.run(
        ["sh", "-c", '. "$0/setup.sh" && exec env -0', str(workspace / "install")],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return dict(entry.split("=", 1) for entry in listing.split("\0") if entry)


def test_install_tree_holds_the_executable_the_index_marker_and_the_share_folder(workspace):
    prefix = workspace / "install" / PACKAGE
    executable = prefix / "lib" / PACKAGE / "reconstruct_node"
    assert executable.is_file() and os.access(executable, os.X_OK)
    assert executable.read_text().startswith(f"#!{sys.executable}")  # the interpreter that has torch and rclpy
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / PACKAGE).is_file()
    share = prefix / "share" / PACKAGE
    assert (share / "package.xml").read_bytes() == (ROOT / "package.xml").read_bytes()
    for folder in ("launch", "config"):
        shipped = sorted(path.name for path in (ROOT / folder).iterdir() if path.is_file())
        assert sorted(path.name for path in (share / folder).iterdir()) == shipped, folder
        for name in shipped:
            assert (share / folder / name).read_bytes() == (ROOT / folder / name).read_bytes(), name


def test_the_sourced_environment_imports_the_installed_copy_not_the_checkout(workspace, sourced):
    """`ros2 run` must run what colcon installed, even where the checkout is also pip-installed (editable).

    Runs in the workspace, as a user does: `python -c` puts its working directory first on sys.path, and the
    checkout (where pytest runs) would shadow every install.
    """
    probe = "import importlib.metadata, vggt_ros; print(vggt_ros.__file__, importlib.metadata.version('vggt_ros'))"
    command = [sys.executable, "-c", probe]
    result = subprocess.run(command, cwd=workspace, env=sourced, capture_output=True, text=True, check=True, timeout=60)
    module_file, version = result.stdout.split()
    assert Path(module_file).is_relative_to(workspace / "install" / PACKAGE), module_file
    assert version == PACKAGE_XML.findtext("version")


# catkin_pkg's changelog parser calls a docutils method that docutils has deprecated; nothing of ours.
@pytest.mark.filterwarnings("ignore:nodes.Node.traverse:DeprecationWarning")
def test_package_xml_is_the_one_version_source(workspace):
    """setup.py reads package.xml; the installed metadata and the changelog's newest release must agree with it."""
    version = PACKAGE_XML.findtext("version")
    site_packages = next((workspace / "install" / PACKAGE / "lib").glob("python3*/site-packages"))
    installed = list(importlib.metadata.distributions(path=[str(site_packages)]))
    assert [(dist.metadata["Name"], dist.version) for dist in installed] == [(PACKAGE, version)]
    assert installed[0].metadata["License"] == PACKAGE_XML.findtext("license")
    changelog = get_changelog_from_path(str(ROOT / "CHANGELOG.rst"), PACKAGE)
    newest_release = next(changelog.foreach_version())[0]
    assert newest_release == version, "CHANGELOG.rst's newest section must be package.xml's version"


def test_installed_node_starts_with_the_parameter_file_found_through_the_ament_index(workspace, sourced, monkeypatch):
    require_loopback_only(__file__)
    install_prefix = workspace / "install" / PACKAGE
    assert sourced["AMENT_PREFIX_PATH"].split(os.pathsep)[0] == str(install_prefix)
    monkeypatch.setenv("AMENT_PREFIX_PATH", sourced["AMENT_PREFIX_PATH"])
    share = Path(get_package_share_directory(PACKAGE))
    assert share == install_prefix / "share" / PACKAGE
    params_file = share / "config" / "reconstruct.yaml"

    executable = install_prefix / "lib" / PACKAGE / "reconstruct_node"
    ros_args = ["--params-file", str(params_file), "-p", f"weights:={TINY}", "-p", "device:=cpu"]
    output = start_then_interrupt(
        [str(executable), "--ros-args", *ros_args, "-p", "precision:=fp32"],
        "listening to ['/camera/image_raw'] as ['camera0']",
        start_timeout_s=START_TIMEOUT_S,
        exit_timeout_s=30,
        env=sourced,
        cwd=workspace,
    )
    assert "Traceback" not in output
