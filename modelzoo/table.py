"""Render the zoo as the seed shows it: model, params, loss, input, Rank-1 (mAP) per dataset.

Used by ``modelzoo list`` and to generate the README's zoo table.
"""

from __future__ import annotations

from typing import Iterable

from modelzoo.manifest import Checkpoint, ModelRecord

#: The columns of torchreid's table: its three person re-ID datasets.
TORCHREID_DATASETS = ("market1501", "dukemtmcreid", "msmt17")
HEADER = ("Model", "# param (M)", "Loss", "Input", *TORCHREID_DATASETS)


def params_cell(record: ModelRecord) -> str:
    """Published parameter count in millions; '†' marks a count that includes the classifier."""
    if record.params_m is None:
        return "-"
    return f"{record.params_m:.1f}" + ("†" if record.params_counted == "total" else "")


def result_cell(checkpoint: Checkpoint | None) -> str:
    """``Rank-1 (mAP)`` of the same-domain result, or '-' when there is none."""
    if checkpoint is None or checkpoint.same_domain is None:
        return "-"
    result = checkpoint.same_domain
    return f"{result.rank1:.1f} ({result.mAP:.1f})"


def row(record: ModelRecord) -> tuple[str, ...]:
    """One table row for ``record``."""
    name = record.name + ("*" if record.from_scratch else "")
    height, width = record.input_size
    cells = [result_cell(record.checkpoints.get(dataset)) for dataset in TORCHREID_DATASETS]
    return (name, params_cell(record), record.loss, f"({height}, {width})", *cells)


def extra_checkpoints(record: ModelRecord) -> list[Checkpoint]:
    """Checkpoints that the same-domain columns do not show (cross-domain, combineall, ImageNet)."""
    return [c for c in record.checkpoints.values() if c.same_domain is None or c.key not in TORCHREID_DATASETS]


def markdown(records: Iterable[ModelRecord]) -> str:
    """A Markdown table of ``records``."""
    lines = ["| " + " | ".join(HEADER) + " |", "| :--- | " + " | ".join(":---:" for _ in HEADER[1:]) + " |"]
    lines += ["| " + " | ".join(row(r)) + " |" for r in records]
    return "\n".join(lines)


def _fixed_width(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart, for terminals."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def plain(records: Iterable[ModelRecord]) -> str:
    """A fixed-width text table of ``records`` for terminals."""
    return _fixed_width([HEADER, *(row(r) for r in records)])


def extra_rows(records: Iterable[ModelRecord]) -> list[tuple[str, str, str, str]]:
    """(checkpoint, trained on, published results, distance) of every extra checkpoint."""
    rows = []
    for record in records:
        for ckpt in extra_checkpoints(record):
            results = "; ".join(f"->{r.dataset} {r.rank1:.1f} ({r.mAP:.1f})" for r in ckpt.results)
            rows.append((ckpt.name, ckpt.trained_on, results or "none (ImageNet backbone weights)", ckpt.distance))
    return rows


EXTRA_HEADER = ("Checkpoint", "Trained on", "Published Rank-1 (mAP) on target", "Distance")


def extra_markdown(records: Iterable[ModelRecord]) -> str:
    """A Markdown table of the cross-domain, combineall and ImageNet checkpoints."""
    lines = ["| " + " | ".join(EXTRA_HEADER) + " |", "| :--- | :--- | :--- | :--- |"]
    lines += [f"| `{c}` | {t} | {r} | {d} |" for c, t, r, d in extra_rows(records)]
    return "\n".join(lines)


def extra_plain(records: Iterable[ModelRecord]) -> str:
    """A fixed-width text table of the cross-domain, combineall and ImageNet checkpoints."""
    return _fixed_width([EXTRA_HEADER, *extra_rows(records)])
