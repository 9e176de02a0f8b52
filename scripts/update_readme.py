"""Regenerate the zoo tables in README.md from the manifest.

    python scripts/update_readme.py          # rewrite README.md
    python scripts/update_readme.py --check  # exit 1 when README.md is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelzoo import manifest, table

README = Path(__file__).resolve().parent.parent / "README.md"
START, END = "<!-- zoo-table:start -->", "<!-- zoo-table:end -->"


def render() -> str:
    """The generated block between the markers."""
    records = list(manifest.models().values())
    return "\n\n".join(
        [
            START,
            "Rank-1 (mAP) in %, same-domain (trained and tested on the same dataset). "
            "`*` trained from scratch; `†` the published count includes the classifiers "
            "(every other count excludes the classifier); `‡` no source believed live (the file's only host, "
            "QMUL, died in 2019, and whether the Internet Archive holds a copy is unknown): a download will most "
            "likely fail, so `modelzoo import` a copy you have.",
            table.markdown(records),
            "Cross-domain, MSMT17 `combineall` and ImageNet checkpoints:",
            table.extra_markdown(records),
            END,
        ]
    )


def updated(text: str) -> str:
    """``text`` with the block between the markers replaced."""
    head, _, rest = text.partition(START)
    _, _, tail = rest.partition(END)
    return head + render() + tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true")
    args = parser.parse_args()
    current = README.read_text(encoding="utf-8")
    new = updated(current)
    if args.check:
        return 0 if new == current else 1
    README.write_text(new, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
