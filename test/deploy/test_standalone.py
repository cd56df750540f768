# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""A plain clone stands alone: the README's main command runs from a copy of the tracked files with no ``shared``
folder beside it, and nothing the code, tests or benchmarks read lies outside the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[2]
SETUP = "bash tools/setup_env.sh .venv && "


def _readme_commands() -> list[str]:
    """The bash blocks of the README's 'Two commands' section, in order."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def _tracked_files() -> list[str]:
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
    return [name for name in listing.stdout.decode().split("\0") if name]


def test_the_fixtures_live_in_the_repository():
    tracked = set(_tracked_files())
    for name in ("vggt_tiny/state_dict.safetensors", "vggt_tiny/config.json", "preprocess/README.md"):
        assert (FIXTURES / name).is_file() and f"fixtures/{name}" in tracked
    assert FIXTURES.parent == ROOT


def test_no_code_reads_outside_the_repository():
    """Code, tests, benchmarks and tools name no path in the team's shared folder beside the clone."""
    offenders = []
    for name in _tracked_files():
        if name.endswith((".py", ".sh", ".toml", ".cfg", ".yaml")) and name != "test/deploy/test_standalone.py":
            text = (ROOT / name).read_text(errors="replace")
            if "../shared" in text or 'parents[2] / "shared"' in text:
                offenders.append(name)
    assert offenders == []


@pytest.mark.slow
def test_the_readme_main_command_runs_from_a_clone_without_shared(tmp_path):
    main_command, test_command = _readme_commands()[:2]
    assert test_command == "bash tools/run_tests.sh"
    assert main_command.startswith(SETUP), "the main command sets the environment up first"
    # The environment is this one (setting up another would take minutes); everything else comes from the copy.
    clone = tmp_path / "clone"
    for name in _tracked_files():
        (clone / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, clone / name)
    assert not (clone.parent / "shared").exists()
    venv_bin = Path(sys.executable).parent
    command = main_command[len(SETUP) :].replace(".venv/bin/", f"{venv_bin}/")
    env = {**os.environ, "PYTHONPATH": str(clone)}
    run = subprocess.run(command, shell=True, cwd=clone, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    out = clone / "out"
    for name in ("map.ply", "trajectory.tum", "summary.json", "transforms.json", "colmap/sparse/0/cameras.bin"):
        assert (out / name).is_file(), name
