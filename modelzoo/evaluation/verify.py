"""``verify``: evaluate zoo checkpoints and compare them with the published numbers.

A row is one published result: a checkpoint on one test dataset (and split,
for VehicleID and VERI-Wild).  It passes when every metric the manifest
publishes for it -- Rank-1, and mAP, mINP and Rank-5 where published -- is
within ``tolerance`` percentage points of the measured one.  The report is
written as ``report.json`` (versions, device, timings, settings, per-metric
results), ``report.md`` and, when matplotlib is installed, ``cmc.png``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from modelzoo import manifest
from modelzoo.devices import cpu_has_native_bf16, cpu_model
from modelzoo.errors import ModelZooError
from modelzoo.inference.distributed import (
    ProcessGroup,
    active_group,
    agree_on_failures,
    group_size,
    is_main_process,
    rank_device,
)
from modelzoo.models import get
from modelzoo.names import canonical_dataset

logger = logging.getLogger(__name__)


#: The metrics a row compares when the manifest publishes them, and their labels.
COMPARED_METRICS = {"rank1": "R1", "mAP": "mAP", "mINP": "mINP", "rank5": "R5"}


@dataclass(frozen=True)
class VerificationRow:
    """One checkpoint on one test dataset (and split): published against measured."""

    checkpoint: str  # "name.key"
    dataset: str
    published_rank1: float
    published_mAP: float | None  # None where unpublished (VehicleID): not compared
    tolerance: float
    measured: Any = None  # EvaluationResult, or None when evaluation failed
    error: str | None = None
    split: str | None = None  # the test size of VehicleID / VERI-Wild
    published_mINP: float | None = None
    published_rank5: float | None = None

    @property
    def test_set(self) -> str:
        """The test dataset, with its split: ``"market1501"``, ``"vehicleid (small)"``."""
        return self.dataset if self.split is None else f"{self.dataset} ({self.split})"

    @property
    def published(self) -> dict[str, float]:
        """The published metrics this row compares, by name (``rank1`` first)."""
        values = {"rank1": self.published_rank1, "mAP": self.published_mAP, "mINP": self.published_mINP,
                  "rank5": self.published_rank5}
        return {name: value for name, value in values.items() if value is not None}

    def difference(self, metric: str) -> float | None:
        """Measured minus published ``metric``, in points; None when not measured or not published."""
        published = self.published.get(metric)
        if self.measured is None or published is None:
            return None
        return float(getattr(self.measured, metric)) - published

    @property
    def diff_rank1(self) -> float | None:
        """Measured minus published Rank-1, in percentage points."""
        return self.difference("rank1")

    @property
    def diff_mAP(self) -> float | None:  # noqa: N802
        """Measured minus published mAP, in percentage points (None where unpublished)."""
        return self.difference("mAP")

    @property
    def passed(self) -> bool:
        """Measured, and every published metric within the tolerance."""
        if self.measured is None:
            return False
        return all(abs(self.difference(metric) or 0.0) <= self.tolerance for metric in self.published)

    def to_dict(self) -> dict[str, Any]:
        """Plain data for report.json: the published metrics, and the difference of each."""
        return {
            "checkpoint": self.checkpoint,
            "dataset": self.dataset,
            "split": self.split,
            "published": self.published,
            "measured": None if self.measured is None else self.measured.to_dict(),
            "difference": {metric: self.difference(metric) for metric in self.published},
            "tolerance": self.tolerance,
            "passed": self.passed,
            "error": self.error,
        }


def row_for(checkpoint: manifest.Checkpoint, result: manifest.Result, tolerance: float) -> VerificationRow:
    """The unmeasured row comparing ``checkpoint`` with its published ``result``."""
    return VerificationRow(checkpoint=checkpoint.name, dataset=result.dataset, split=result.split,
                           published_rank1=result.rank1, published_mAP=result.mAP, published_mINP=result.mINP,
                           published_rank5=result.rank5, tolerance=tolerance)


def planned_rows(
    names: Sequence[str] | None = None, datasets: Sequence[str] | None = None
) -> list[tuple[manifest.Checkpoint, manifest.Result]]:
    """(checkpoint, published result) pairs to verify; every published result by default.

    Args:
        names: models (``resnet50``) or checkpoints (``osnet_ibn_x1_0.market1501``).
        datasets: only results on these test datasets.
    """
    wanted = {canonical_dataset(d) for d in datasets} if datasets else None
    pairs = []
    for checkpoint in _checkpoints(names):
        for result in checkpoint.results:
            if wanted is None or result.dataset in wanted:
                pairs.append((checkpoint, result))
    return pairs


def _checkpoints(names: Sequence[str] | None) -> Iterable[manifest.Checkpoint]:
    if not names:
        for record in manifest.models().values():
            yield from record.checkpoints.values()
        return
    for name in names:
        model, tag = manifest.split_name(name)
        if tag is not None:
            yield manifest.resolve_checkpoint(name)
        else:
            yield from manifest.resolve_name(model).checkpoints.values()


def verify(
    names: Sequence[str] | None = None,
    datasets: Sequence[str] | None = None,
    *,
    data_root: str | Path,
    tolerance: float = 0.5,
    trials: int | None = None,
    distributed: bool = False,
    process_group: ProcessGroup | None = None,
    **evaluate_kwargs: Any,
) -> list[VerificationRow]:
    """Evaluate each planned checkpoint and compare it with the manifest.

    A checkpoint that cannot be fetched or a dataset that cannot be read makes
    its row fail with the error's message; the other rows still run.  With
    ``distributed=True`` (or a ``process_group``) every rank runs every row,
    the images of each split across the ranks, and every rank returns the
    same rows (see :func:`_measure`).

    Args:
        names, datasets: what to verify (see :func:`planned_rows`).
        data_root: the folder holding the datasets.
        tolerance: allowed |measured - published|, in points, for every published metric.
        trials: random galleries averaged for the rows of a dataset that draws
            its gallery at random (VehicleID; default 10).
        distributed, process_group: as ``modelzoo.evaluate``.
        **evaluate_kwargs: passed to ``modelzoo.evaluate`` (``backend=`` too:
            any runtime may be verified; the precision is always fp32, the
            published setting).

    Raises:
        ModelZooError: nothing to verify, or ``trials`` and no planned row draws its gallery at random.
        ValueError: a tolerance that is not a finite number >= 0, or a precision other than fp32.
    """
    if evaluate_kwargs.get("precision", "fp32") != "fp32":
        raise ValueError("verify compares with the published numbers, which were measured at fp32: leave the "
                         "precision out (measure another precision with modelzoo.evaluate / modelzoo eval)")
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not math.isfinite(tolerance) \
            or tolerance < 0:
        raise ValueError(f"tolerance must be a finite number of points >= 0, got {tolerance!r}")
    from modelzoo.datasets import has_random_gallery

    pairs = planned_rows(names, datasets)
    if not pairs:
        raise ModelZooError("nothing to verify: no published result matches those names and datasets")
    drawn = {result.dataset for _, result in pairs if has_random_gallery(result.dataset)}
    if trials is not None and not drawn:
        raise ModelZooError("trials apply to the rows of a dataset whose gallery is drawn at random (vehicleid); "
                            "no planned row is one: leave trials out")
    group = active_group(distributed, process_group)
    rows = []
    for checkpoint, result in pairs:
        row = row_for(checkpoint, result, tolerance)
        options = {**evaluate_kwargs, "split": result.split}
        if result.dataset in drawn:
            options["trials"] = trials
        try:
            measured = _measure(checkpoint.name, result.dataset, data_root, group, options)
        except ModelZooError as exc:
            logger.error("%s on %s: %s", checkpoint.name, result.dataset, exc)
            rows.append(dataclasses.replace(row, error=str(exc)))
            continue
        rows.append(dataclasses.replace(row, measured=measured))
    return rows


def _measure(checkpoint: str, dataset: str, data_root: str | Path, group: ProcessGroup | None,
             evaluate_kwargs: dict[str, Any]) -> Any:
    """``evaluate`` one row.  In a process group the ranks first agree that each of them could
    load the checkpoint and read the dataset, so a failure on one rank fails the row on all of
    them instead of leaving the ranks in different rows' collectives."""
    from modelzoo.evaluation.pipeline import evaluate

    if group_size(group) == 1:
        return evaluate(checkpoint, dataset, data_root, **evaluate_kwargs)
    from modelzoo import datasets

    evaluate_kwargs = dict(evaluate_kwargs)  # shared by every row: popped from a copy
    fetching = {key: evaluate_kwargs.pop(key) for key in ("cache_dir", "mirrors", "offline") if key in evaluate_kwargs}
    device = rank_device(evaluate_kwargs.get("device"))
    model, failure = None, None
    try:
        progress = evaluate_kwargs.get("progress", True) and is_main_process(group)
        model = get(checkpoint, device=device, progress=progress, **fetching)
        datasets.read_dataset(dataset, data_root, split=evaluate_kwargs.get("split"))
    except ModelZooError as exc:
        failure = exc
    agree_on_failures(failure, group)
    assert model is not None  # agree_on_failures raised otherwise
    return evaluate(model, dataset, data_root, process_group=group, **{**evaluate_kwargs, "device": device})


def _cell(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def markdown_table(rows: Sequence[VerificationRow]) -> str:
    """Published, measured and difference of Rank-1, mAP and mINP per row (and Rank-5 where a row publishes it).

    mINP is measured for every row, and compared where published.
    """
    metrics = ["rank1", "mAP", "mINP"] + (["rank5"] if any("rank5" in row.published for row in rows) else [])
    header = ["Checkpoint", "Test dataset"]
    for metric in metrics:
        label = COMPARED_METRICS[metric]
        header += [f"Published {label}", f"Measured {label}", f"Δ {label}"]
    lines = ["| " + " | ".join(header + ["Result"]) + " |",
             "| :--- | :--- | " + " | ".join("---:" for _ in header[2:]) + " | :---: |"]
    for row in rows:
        verdict = "pass" if row.passed else ("error" if row.error else "FAIL")
        cells = [row.checkpoint, row.test_set]
        for metric in metrics:
            measured = getattr(row.measured, metric) if row.measured is not None else None
            cells += [_cell(row.published.get(metric)), _cell(measured), _cell(row.difference(metric), True)]
        lines.append("| " + " | ".join(cells + [verdict]) + " |")
    return "\n".join(lines)


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded in every report."""
    import numpy
    import torch

    from modelzoo import __version__

    return {
        "reid_modelzoo": __version__,
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_native_bf16": cpu_has_native_bf16(),
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def write_report(rows: Sequence[VerificationRow], report_dir: str | Path, *, note: str = "") -> list[Path]:
    """Write report.json, report.md and (with matplotlib) cmc.png; returns the paths written."""
    directory = Path(report_dir)
    directory.mkdir(parents=True, exist_ok=True)
    env = environment()
    data = {"environment": env, "note": note, "rows": [r.to_dict() for r in rows],
            "passed": all(r.passed for r in rows)}
    written = [directory / "report.json", directory / "report.md"]
    written[0].write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    written[1].write_text(_markdown_report(rows, env, note), encoding="utf-8")
    plot = _plot_cmc(rows, directory / "cmc.png")
    return written + ([plot] if plot else [])


def _markdown_report(rows: Sequence[VerificationRow], env: dict[str, Any], note: str) -> str:
    parts = ["# reid-modelzoo verification report", ""]
    if note:
        parts += [f"> {note}", ""]
    parts += [markdown_table(rows), ""]
    for row in rows:
        if row.error:
            parts.append(f"- **{row.checkpoint} on {row.test_set}**: {row.error}")
        elif row.measured is not None:
            m = row.measured
            trials = f"mean of {m.settings['trials']} seeded trials; " if "trials" in m.settings else ""
            parts.append(
                f"- **{row.checkpoint} on {row.test_set}**: {trials}R5 {m.rank5:.1f}, R10 {m.rank10:.1f}, "
                f"R20 {m.rank20:.1f}, mINP {m.mINP:.1f}; {m.num_query} queries ({m.num_valid_queries} valid), "
                f"{m.num_gallery} gallery; features {m.timings['features']:.1f} s, ranking "
                f"{m.timings['ranking']:.2f} s; settings {json.dumps(m.settings)}"
            )
    parts += ["", "Environment: " + ", ".join(f"{k} {v}" for k, v in env.items() if v), ""]
    return "\n".join(parts)


def _plot_cmc(rows: Sequence[VerificationRow], path: Path) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.info("matplotlib is not installed: no CMC plot (pip install 'reid-modelzoo[plot]')")
        return None
    figure, axes = plt.subplots(figsize=(6, 4))
    for row in rows:
        if row.measured is not None:
            cmc = row.measured.cmc
            axes.plot(range(1, len(cmc) + 1), cmc, label=f"{row.checkpoint} → {row.test_set}")
    axes.set_xlabel("rank")
    axes.set_ylabel("matching rate (%)")
    axes.set_title("CMC")
    axes.grid(alpha=0.3)
    axes.legend(fontsize="small")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
