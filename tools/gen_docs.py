# Copyright 2026 The vggt_ros authors
# SPDX-License-Identifier: Apache-2.0
"""Write the generated documentation: docs/parameters.md from the node's parameter fields.

python tools/gen_docs.py          # rewrite docs/parameters.md
python tools/gen_docs.py --check  # exit 1 if it is out of date (test_parameters.py checks the same)
"""

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vggt_ros.live.parameters import markdown_table  # noqa: E402

PARAMETERS_MD = ROOT / "docs" / "parameters.md"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only check that the file is up to date")
    args = parser.parse_args()
    text = markdown_table()
    if args.check:
        current = PARAMETERS_MD.read_text() if PARAMETERS_MD.exists() else ""
        if current != text:
            print(f"{PARAMETERS_MD.relative_to(ROOT)} is out of date: run python tools/gen_docs.py", file=sys.stderr)
            return 1
        return 0
    PARAMETERS_MD.parent.mkdir(exist_ok=True)
    PARAMETERS_MD.write_text(text)
    print(f"wrote {PARAMETERS_MD.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
