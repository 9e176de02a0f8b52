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
    """The generated block between the markers: one group of tables per zoo."""
    records = list(manifest.models().values())
    torchreid, fastreid = table.of_zoo(records, "torchreid"), table.of_zoo(records, "fastreid")
    return "\n\n".join(
        [
            START,
            "**torchreid.** Rank-1 (mAP) in %, same-domain (trained and tested on the same dataset). "
            "`*` trained from scratch; `†` the published count includes the classifiers "
            "(every other count excludes the classifier); `§` no source believed live (the file's only host, "
            "QMUL, died in 2019, and whether the Internet Archive holds a copy is unknown): a download will most "
            "likely fail, so `modelzoo import` a copy you have.",
            table.markdown(torchreid),
            "Cross-domain, MSMT17 `combineall` and ImageNet checkpoints:",
            table.extra_markdown(torchreid),
            "**fast-reid** (the v0.1.1 release files of JDAI-CV/fast-reid). Rank-1 / mAP / mINP in %, "
            "same-domain, cosine distance; `‡` published, but its weights were never released. "
            "No parameter counts are published.",
            table.fastreid_markdown(fastreid),
            "fast-reid's vehicle checkpoints, one row per published test set (VehicleID publishes Rank-1 and "
            "Rank-5, averaged over random galleries; `-`: not published):",
            table.vehicle_markdown(fastreid),
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
