# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Every Python file starts with the copyright and SPDX lines, as ament_copyright checks in ROS packages.

The files are the ones git would commit (tracked, plus untracked but not ignored), so a new file fails here before
its first commit, while the virtualenv and build outputs never count. The SPDX identifier must be package.xml's
<license>: that file is the one place the license is stated (setup.py reads it from there too).
"""

import re
import subprocess
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LICENSE = ElementTree.parse(ROOT / "package.xml").getroot().findtext("license")
HEADER = re.compile(r"# Copyright (\d{4})(-\d{4})? The vggt_ros authors\n# SPDX-License-Identifier: (\S+)\n")
EXAMPLE = f"# Copyright 2026 The vggt_ros authors\n# SPDX-License-Identifier: {LICENSE}\n"


def python_files() -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", "--", "*.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    if listing.returncode != 0:
        pytest.skip(f"the file list comes from git, and {ROOT} is not a git checkout: {listing.stderr.strip()}")
    # --cached also lists tracked files deleted in the working tree.
    return [ROOT / name for name in listing.stdout.split("\0") if name and (ROOT / name).is_file()]


def header_problem(text: str) -> str | None:
    """What is wrong with a file's first lines (after an optional #! line), or None when they are right."""
    body = text.split("\n", 1)[1] if text.startswith("#!") else text
    match = HEADER.match(body)
    if match is None:
        return "no copyright and SPDX lines at the top"
    if match.group(3) != LICENSE:
        return f"SPDX identifier {match.group(3)!r}, but package.xml's license is {LICENSE!r}"
    return None


def test_every_python_file_starts_with_the_copyright_and_spdx_lines():
    files = python_files()
    assert ROOT / "vggt_ros" / "ros" / "node.py" in files and ROOT / "launch" / "reconstruct.launch.py" in files
    problems = {path: header_problem(path.read_text()) for path in files}
    wrong = [f"{path.relative_to(ROOT)}: {problem}" for path, problem in problems.items() if problem]
    assert not wrong, "start each file with (after a #! line, if any):\n" + EXAMPLE + "\n".join(wrong)


@pytest.mark.parametrize(
    "text, problem",
    [
        (EXAMPLE + '"""Docstring."""\n', None),
        ("#!/usr/bin/env python3\n" + EXAMPLE, None),
        ("# Copyright 2025-2026 The vggt_ros authors\n# SPDX-License-Identifier: " + LICENSE + "\n", None),
        ('"""Docstring."""\n' + EXAMPLE, "no copyright and SPDX lines at the top"),
        ("# Copyright 2026 The vggt_ros authors\n", "no copyright and SPDX lines at the top"),
        ("# Copyright 2026 Someone else\n# SPDX-License-Identifier: " + LICENSE + "\n", "no copyright"),
        ("# Copyright 2026 The vggt_ros authors\n# SPDX-License-Identifier: MIT\n", "SPDX identifier 'MIT'"),
    ],
)
def test_header_check_accepts_the_header_and_names_what_is_wrong(text, problem):
    found = header_problem(text)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found
