# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""ruff over the repository, run by the same pytest as the other tests (the ament_flake8 / ament_pep257 convention).

The rules and the format live in pyproject.toml; ruff honours .gitignore, so the virtualenv and build outputs are
not checked. ruff runs as `python -m ruff` from the interpreter running the tests: the virtualenv's bin/ need not be
on PATH. Besides the repository checks, one test feeds ruff code with known faults, so a configuration that
silently checks nothing (no files found, rules switched off) fails too.
"""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def ruff(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ruff", *args], cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=120
    )


def test_ruff_checks_the_package_tests_benchmarks_launch_file_and_setup():
    listed = ruff("check", "--show-files", ".")
    assert listed.returncode == 0, listed.stderr
    files = {Path(line.strip()) for line in listed.stdout.splitlines()}
    for name in ("vggt_ros/ros/node.py", "test/conftest.py", "bench/backends.py", "launch/reconstruct.launch.py"):
        assert ROOT / name in files, name
    assert ROOT / "setup.py" in files
    assert not [path for path in files if ".venv" in path.parts], "ruff must not check the virtualenv"


def test_configuration_catches_unused_imports_unsorted_imports_and_lines_over_120():
    fine = "import os\n\nprint(os.sep, " + "1" * (120 - len("print(os.sep, )")) + ")\n"
    assert len(fine.splitlines()[-1]) == 120
    assert ruff("check", "--stdin-filename", "vggt_ros/example.py", "-", stdin=fine).returncode == 0
    faulty = "import sys\nimport os\n\nprint(os.sep, " + "1" * (121 - len("print(os.sep, )")) + ")\n"
    result = ruff("check", "--output-format", "concise", "--stdin-filename", "vggt_ros/example.py", "-", stdin=faulty)
    assert result.returncode == 1
    assert {"F401", "I001", "E501"} <= {word for word in result.stdout.split() if word[:1].isupper()}


def test_ruff_check_finds_nothing():
    result = ruff("check", "--output-format", "concise", ".")
    assert result.returncode == 0, (
        "ruff check found problems; fix them (`ruff check --fix` fixes those marked [*]):\n" + result.stdout
    )


def test_ruff_format_would_change_nothing():
    result = ruff("format", "--check", "--output-format", "concise", ".")
    assert result.returncode == 0, "ruff format would change these files; run `ruff format .`:\n" + result.stdout
