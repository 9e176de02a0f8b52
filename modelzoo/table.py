"""Render the zoo as tables, one group per zoo: ``modelzoo list`` and the README's zoo tables.

torchreid's table is the seed's: model, params, loss, input, Rank-1 (mAP) per
dataset, then its cross-domain, combineall and ImageNet checkpoints.
fast-reid's shows Rank-1 / mAP / mINP per person dataset, then one row per
published result of its vehicle checkpoints (VehicleID and VERI-Wild per test
size).
"""

from __future__ import annotations

from typing import Iterable, Sequence

from modelzoo.manifest import Checkpoint, ModelRecord, Result

#: The columns of the per-dataset tables: the person re-ID datasets both zoos publish.
TORCHREID_DATASETS = ("market1501", "dukemtmcreid", "msmt17")
HEADER = ("Model", "# param (M)", "Loss", "Input", *TORCHREID_DATASETS)
EXTRA_HEADER = ("Checkpoint", "Trained on", "Published Rank-1 (mAP) on target", "Distance")
FASTREID_HEADER = ("Model", "Loss", "Input", *TORCHREID_DATASETS)
VEHICLE_HEADER = ("Checkpoint", "Test set", "Input", "Rank-1", "Rank-5", "mAP", "mINP")
UNRELEASED_MARK = "‡"


def of_zoo(records: Iterable[ModelRecord], zoo: str) -> list[ModelRecord]:
    """The records of one zoo (``"torchreid"`` or ``"fastreid"``), in the order given."""
    return [record for record in records if record.zoo == zoo]


def _number(value: float | None) -> str:
    """A published percentage with the decimals it was published with (one, or two: ``80.13``); '-' for none."""
    if value is None:
        return "-"
    text = f"{value:.2f}"
    return text[:-1] if text.endswith("0") else text


def describe_result(result: Result) -> str:
    """``"R1 94.4 mAP 86.1 mINP 59.4"``: Rank-1 and whichever of mAP, mINP and Rank-5 are published."""
    labels = {"rank1": "R1", "mAP": "mAP", "mINP": "mINP", "rank5": "R5"}
    published = result.published
    return " ".join(f"{label} {_number(published[key])}" for key, label in labels.items() if key in published)


# --------------------------------------------------------------------------- torchreid


def params_cell(record: ModelRecord) -> str:
    """Published parameter count in millions; '†' marks a count that includes the classifier."""
    if record.params_m is None:
        return "-"
    return f"{record.params_m:.1f}" + ("†" if record.params_counted == "total" else "")


NO_LIVE_SOURCE = "§"


def result_cell(checkpoint: Checkpoint | None) -> str:
    """``Rank-1 (mAP)`` of the same-domain result, or '-' when there is none; '§' marks a checkpoint
    with no source believed live (its only host is dead, its only other copy an unverified archive)."""
    if checkpoint is None or checkpoint.same_domain is None:
        return "-"
    result = checkpoint.same_domain
    return f"{result.rank1:.1f} ({_number(result.mAP)})" + ("" if checkpoint.believed_live else NO_LIVE_SOURCE)


def _input(size: tuple[int, int]) -> str:
    return f"({size[0]}, {size[1]})"


def row(record: ModelRecord) -> tuple[str, ...]:
    """One row of torchreid's table for ``record``."""
    name = record.name + ("*" if record.from_scratch else "")
    cells = [result_cell(record.checkpoints.get(dataset)) for dataset in TORCHREID_DATASETS]
    return (name, params_cell(record), record.loss, _input(record.input_size), *cells)


def extra_checkpoints(record: ModelRecord) -> list[Checkpoint]:
    """Checkpoints that the same-domain columns do not show (cross-domain, combineall, ImageNet)."""
    return [c for c in record.checkpoints.values() if c.same_domain is None or c.key not in TORCHREID_DATASETS]


def _markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: Sequence[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def markdown(records: Iterable[ModelRecord]) -> str:
    """A Markdown table of ``records`` (torchreid's columns)."""
    return _markdown_table(HEADER, (row(r) for r in records), [":---", *(":---:" for _ in HEADER[1:])])


def _fixed_width(rows: list[tuple[str, ...]]) -> str:
    """Left-aligned columns, two spaces apart, for terminals."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(r, widths)).rstrip() for r in rows)


def plain(records: Iterable[ModelRecord]) -> str:
    """A fixed-width text table of ``records`` for terminals (torchreid's columns)."""
    return _fixed_width([HEADER, *(row(r) for r in records)])


def extra_rows(records: Iterable[ModelRecord]) -> list[tuple[str, str, str, str]]:
    """(checkpoint, trained on, published results, distance) of every extra checkpoint."""
    rows = []
    for record in records:
        for ckpt in extra_checkpoints(record):
            results = "; ".join(f"->{r.dataset} {r.rank1:.1f} ({_number(r.mAP)})" for r in ckpt.results)
            rows.append((ckpt.name, ckpt.trained_on, results or "none (ImageNet backbone weights)", ckpt.distance))
    return rows


def extra_markdown(records: Iterable[ModelRecord]) -> str:
    """A Markdown table of the cross-domain, combineall and ImageNet checkpoints."""
    rows = ((f"`{c}`", t, r, d) for c, t, r, d in extra_rows(records))
    return _markdown_table(EXTRA_HEADER, rows, [":---"] * len(EXTRA_HEADER))


def extra_plain(records: Iterable[ModelRecord]) -> str:
    """A fixed-width text table of the cross-domain, combineall and ImageNet checkpoints."""
    return _fixed_width([EXTRA_HEADER, *extra_rows(records)])


# --------------------------------------------------------------------------- fast-reid


def _three_metrics(result: Result) -> str:
    return f"{_number(result.rank1)} / {_number(result.mAP)} / {_number(result.mINP)}"


def fastreid_cell(record: ModelRecord, dataset: str) -> str:
    """``Rank-1 / mAP / mINP`` on ``dataset``; '‡' marks a result whose weights were never released."""
    checkpoint = record.checkpoints.get(dataset)
    if checkpoint is not None and checkpoint.same_domain is not None:
        return _three_metrics(checkpoint.same_domain)
    unreleased = next((r for r in record.unreleased if r.dataset == dataset), None)
    return _three_metrics(unreleased) + UNRELEASED_MARK if unreleased is not None else "-"


def fastreid_row(record: ModelRecord) -> tuple[str, ...]:
    """One row of fast-reid's person table for ``record``."""
    cells = [fastreid_cell(record, dataset) for dataset in TORCHREID_DATASETS]
    return (record.name, record.loss, _input(record.input_size), *cells)


def vehicle_rows(records: Iterable[ModelRecord]) -> list[tuple[str, ...]]:
    """One row per published result of every checkpoint trained outside the person datasets."""
    rows: list[tuple[str, ...]] = []
    for record in records:
        for ckpt in record.checkpoints.values():
            if ckpt.key in TORCHREID_DATASETS:
                continue
            for r in ckpt.results:
                rows.append((ckpt.name, r.test_set, _input(ckpt.preprocessing.input_size), _number(r.rank1),
                             _number(r.rank5), _number(r.mAP), _number(r.mINP)))
    return rows


def fastreid_markdown(records: Iterable[ModelRecord]) -> str:
    """A Markdown table of fast-reid's ``records``: Rank-1 / mAP / mINP per person dataset."""
    return _markdown_table(FASTREID_HEADER, (fastreid_row(r) for r in records),
                           [":---", ":---:", ":---:", *(":---:" for _ in TORCHREID_DATASETS)])


def fastreid_plain(records: Iterable[ModelRecord]) -> str:
    """A fixed-width text table of fast-reid's ``records``."""
    return _fixed_width([FASTREID_HEADER, *(fastreid_row(r) for r in records)])


def vehicle_markdown(records: Iterable[ModelRecord]) -> str:
    """A Markdown table of the vehicle checkpoints' published results, one row per test set."""
    rows = ((f"`{name}`", *rest) for name, *rest in vehicle_rows(records))
    return _markdown_table(VEHICLE_HEADER, rows, [":---", ":---", ":---:", "---:", "---:", "---:", "---:"])


def vehicle_plain(records: Iterable[ModelRecord]) -> str:
    """A fixed-width text table of the vehicle checkpoints' published results."""
    return _fixed_width([VEHICLE_HEADER, *vehicle_rows(records)])
