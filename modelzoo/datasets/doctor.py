"""Check a dataset folder against the real dataset (``modelzoo doctor DATASET --data-root DIR``).

The doctor runs the readers split by split, so one problem does not hide the
next, and reports every finding with its fix:

* where the data was found, which layout and (MSMT17) which version;
* missing or malformed folders and list files, wrong nesting (errors);
* image counts that differ from the real dataset (warnings: synthetic or
  partial data still evaluates, its numbers just are not the published ones);
* listed images missing on disk, and a sample of images that do not decode;
* queries without a gallery match from another camera (the protocol skips them).
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from modelzoo.datasets._base import (
    DatasetReader,
    ImageRecord,
    Located,
    PathLike,
    advice_of,
)
from modelzoo.datasets._registry import DATASET_NAMES, reader_for
from modelzoo.datasets.market import MarketStyleReader
from modelzoo.errors import DatasetLayoutError, UnknownDatasetError

LEVELS = ("ok", "warning", "error")

#: Image counts of the real datasets (torchreid's docstrings, the papers).
REAL_COUNTS: dict[str, dict[str, int]] = {
    "market1501": {"train": 12_936, "query": 3_368, "gallery": 15_913},
    "dukemtmcreid": {"train": 16_522, "query": 2_228, "gallery": 17_661},
    "msmt17": {"train": 32_621, "query": 11_659, "gallery": 82_161},
    # fastreid-zoo facts, section 5 (no train count is given there)
    "veri": {"query": 1_678, "gallery": 11_579},
    "vehicleid": {"small": 6_493, "medium": 13_377, "large": 19_777},
    "veriwild": {"small": 41_861, "medium": 69_389, "large": 138_517},
}

# MSMT17's 32,621 training images are list_train.txt and list_val.txt together;
# VERI-Wild's test sizes are counted as query and gallery together.
_COUNTED_TOGETHER: dict[str, dict[str, tuple[str, ...]]] = {
    "msmt17": {"train": ("train", "val")},
    "veriwild": {size: (f"{size} query", f"{size} gallery") for size in ("small", "medium", "large")},
}
_COUNT_LABELS = {
    ("msmt17", "train"): "train (list_train.txt + list_val.txt)",
    **{("veriwild", size): f"{size} (query + gallery)" for size in ("small", "medium", "large")},
}

_VERSION_DESCRIPTIONS = {
    "MSMT17_V1": "V1, the original images, in train/ and test/",
    "MSMT17_V2": "V2, faces blurred, in mask_train_v2/ and mask_test_v2/",
}

#: Images decoded per split; enough to catch a broken copy, cheap on 80k images.
DEFAULT_SAMPLE_PER_SPLIT = 100
_MAX_LISTED = 5


@dataclass(frozen=True)
class Finding:
    """One line of the doctor's report.

    Attributes:
        level: ``"ok"``, ``"warning"`` (works, but differs from the real
            dataset or from torchreid's layout) or ``"error"`` (evaluation fails).
        message: what was found.
        fix: what to do about it; empty for ``ok`` findings.
    """

    level: str
    message: str
    fix: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {self.level!r}")


def check_layout(
    name: str, data_root: PathLike, *, sample_per_split: int = DEFAULT_SAMPLE_PER_SPLIT
) -> list[Finding]:
    """Check a dataset folder against the real dataset's layout and size.

    Args:
        name: a dataset of ``modelzoo.names.DATASET_NAMES`` (or an alias).
        data_root: the folder passed to :func:`modelzoo.datasets.read_dataset`.
        sample_per_split: images per split to decode with PIL (0 skips the check).

    Returns:
        The findings, in reading order.

    Raises:
        UnknownDatasetError: unknown dataset name.
    """
    reader = reader_for(name)
    try:
        located = reader.locate(data_root)
    except DatasetLayoutError as error:
        return [_error_finding(error)]
    findings = [_found_finding(reader, located)]
    findings += [Finding("warning", note.problem, note.fix) for note in located.notes]
    records, split_findings = _read_splits(reader, located)
    findings += split_findings
    findings += _count_findings(reader, located, records)
    present, missing_findings = _missing_file_findings(records)
    findings += missing_findings
    findings += _decode_findings(present, sample_per_split)
    for size in reader.test_sizes or (None,):
        findings += _query_match_findings(reader, records, size)
    return findings


def format_findings(findings: list[Finding]) -> str:
    """The findings as aligned text lines, each fix under its finding, then a summary."""
    lines: list[str] = []
    indent = " " * 10
    for finding in findings:
        first, *rest = finding.message.splitlines() or [""]
        lines.append(f"{'[' + finding.level + ']':<9} {first}")
        lines += [f"{indent}{line}" for line in rest]
        if finding.fix:
            lines.append(f"{indent}fix: {finding.fix}")
    lines.append(_summary(findings))
    return "\n".join(lines)


def doctor(
    name: str, data_root: PathLike, *, sample_per_split: int = DEFAULT_SAMPLE_PER_SPLIT
) -> tuple[int, str]:
    """Run :func:`check_layout` and render the report, for the ``doctor`` command.

    Args:
        name: dataset name or alias.
        data_root: the folder to check.
        sample_per_split: images per split to decode with PIL.

    Returns:
        ``(exit code, report)``: 0 when no finding is an error, 1 otherwise.
    """
    try:
        findings = check_layout(name, data_root, sample_per_split=sample_per_split)
    except UnknownDatasetError as error:
        findings = [Finding("error", str(error), f"use one of {', '.join(DATASET_NAMES)}.")]
    header = f"modelzoo doctor: {name} in {data_root}"
    exit_code = 1 if any(finding.level == "error" for finding in findings) else 0
    return exit_code, f"{header}\n{format_findings(findings)}"


# --------------------------------------------------------------------------- layout


def _error_finding(error: DatasetLayoutError) -> Finding:
    advice = advice_of(error)
    return Finding("error", advice.problem, advice.fix)


def _found_finding(reader: DatasetReader, located: Located) -> Finding:
    version = _VERSION_DESCRIPTIONS.get(located.variant)
    detail = f"version {version}" if version else f"layout {located.variant}"
    return Finding("ok", f"found {reader.display_name} at {located.data_dir} ({detail})")


def _read_splits(
    reader: DatasetReader, located: Located
) -> tuple[dict[str, tuple[ImageRecord, ...]], list[Finding]]:
    """Read every split; a missing train/val part is a warning, anything else an error."""
    records: dict[str, tuple[ImageRecord, ...]] = {}
    findings: list[Finding] = []
    for split in reader.splits:
        try:
            records[split] = reader.read_split(located, split)
        except DatasetLayoutError as error:
            findings.append(_split_error_finding(reader, located, split, error))
    return records, findings


def _split_error_finding(
    reader: DatasetReader, located: Located, split: str, error: DatasetLayoutError
) -> Finding:
    advice = advice_of(error)
    if split in reader.required_splits or reader.has_split(located, split):
        return Finding("error", advice.problem, advice.fix)
    # An absent training part does not stop evaluation; a broken one would
    # still be worth fixing, hence the has_split test above.
    return Finding(
        "warning",
        advice.problem,
        f"{advice.fix} (Evaluation needs only query and gallery; torchreid's "
        f"loader needs the {split} part too.)",
    )


# --------------------------------------------------------------------------- counts


def _count_findings(
    reader: DatasetReader, located: Located, records: dict[str, tuple[ImageRecord, ...]]
) -> list[Finding]:
    """One finding comparing each split's image count with the real dataset's."""
    lines: list[str] = []
    differs = False
    together = _COUNTED_TOGETHER.get(reader.name, {})
    for label, real in REAL_COUNTS[reader.name].items():
        splits = together.get(label, (label,))
        if not any(split in records for split in splits):
            continue  # already reported as missing
        count = sum(len(records.get(split, ())) for split in splits)
        differs = differs or count != real
        lines.append(_count_line(reader, located, label, count, real))
    if not lines:
        return []
    if not differs:
        return [Finding("ok", f"image counts match the real {reader.display_name}:" + "".join(lines))]
    return [
        Finding(
            "warning",
            f"image counts differ from the real {reader.display_name}:" + "".join(lines),
            "nothing to do for synthetic or partial data: evaluation still works, "
            "but its numbers are not comparable with the published ones. For the "
            "full dataset, unpack the complete archive again.",
        )
    ]


def _count_line(reader: DatasetReader, located: Located, label: str, count: int, real: int) -> str:
    """``"\n  query: 20 images, real 3,368 (3,348 fewer)"``."""
    what = _COUNT_LABELS.get((reader.name, label), label)
    junk = _junk_note(reader, located, label)
    if count == real:
        return f"\n  {what}: {count:,} images{junk}, as in the real dataset"
    difference = f"{abs(count - real):,} {'fewer' if count < real else 'more'}"
    return f"\n  {what}: {count:,} images{junk}, real {real:,} ({difference})"


def _junk_note(reader: DatasetReader, located: Located, split: str) -> str:
    """``" (+ 3 junk images with pid -1, dropped)"`` for Market-style folders holding junk."""
    if not isinstance(reader, MarketStyleReader) or not reader.has_split(located, split):
        return ""
    junk = reader.count_junk(located, split)
    return f" (+ {junk:,} junk images with pid -1, dropped)" if junk else ""


# --------------------------------------------------------------------------- files


def _missing_file_findings(
    records: dict[str, tuple[ImageRecord, ...]],
) -> tuple[dict[str, list[ImageRecord]], list[Finding]]:
    """Split records into present ones and an error per split for listed-but-absent files."""
    present: dict[str, list[ImageRecord]] = {}
    findings = []
    for split, split_records in records.items():
        exists = [record.path.is_file() for record in split_records]  # one stat per image
        present[split] = [record for record, ok in zip(split_records, exists) if ok]
        missing = [record.path for record, ok in zip(split_records, exists) if not ok]
        if missing:
            findings.append(
                Finding(
                    "error",
                    f"{len(missing):,} of {len(split_records):,} {split} images are "
                    f"listed but missing on disk:{_listing(missing)}",
                    "unpack the complete archive; list files from another copy or "
                    "version (V1 vs V2) also cause this.",
                )
            )
    return present, findings


def _decode_findings(records: dict[str, list[ImageRecord]], sample_per_split: int) -> list[Finding]:
    """Decode a fixed sample of each split with PIL and report the images that fail."""
    if sample_per_split <= 0:
        return []
    sampler = random.Random(0)  # a fixed sample: the same report on every run
    checked = 0
    broken: list[str] = []
    for split_records in records.values():
        sample = sampler.sample(split_records, min(sample_per_split, len(split_records)))
        checked += len(sample)
        for record in sample:
            problem = image_problem(record.path)
            if problem is not None:
                broken.append(f"{record.path}: {problem}")
    if not broken:
        return [Finding("ok", f"{checked:,} sampled images decode")]
    return [
        Finding(
            "error",
            f"{len(broken):,} of {checked:,} sampled images cannot be decoded:{_listing(broken)}",
            "extract these files from the archive again (an interrupted download "
            "or copy truncates them); more may be broken than the sample shows.",
        )
    ]


def image_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable image, or None when it decodes.

    ``Image.verify()`` checks the structure but misses a truncated JPEG, so
    the image is also fully decoded (cheap at re-ID crop sizes).
    """
    try:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            image.load()
    except (OSError, SyntaxError, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


# --------------------------------------------------------------------------- protocol


def _query_match_findings(
    reader: DatasetReader, records: dict[str, tuple[ImageRecord, ...]], size: str | None
) -> list[Finding]:
    """Check that the queries of one test set have gallery matches from other cameras (else the protocol skips them).

    A test set with a random gallery (VehicleID) is checked on its first trial.
    """
    if not all(split in records for split in reader.test_splits(size)):
        return []
    query, gallery = reader.query_and_gallery(records, size, 0)
    cameras_of: dict[int, set[int]] = defaultdict(set)
    for record in gallery:
        cameras_of[record.pid].add(record.camid)
    unmatched = sum(1 for record in query if not cameras_of[record.pid] - {record.camid})
    which = f" of the {size} test set" if size is not None else ""
    if unmatched == 0:
        return [Finding("ok", f"all {len(query):,} query images{which} have gallery matches from other cameras")]
    if unmatched == len(query):
        return [
            Finding(
                "error",
                f"no query image{which} has a gallery image of its identity from another "
                "camera: the evaluation protocol would skip every query.",
                "query and gallery must come from the same copy of the dataset: "
                "unpack both from the same archive.",
            )
        ]
    return [
        Finding(
            "warning",
            f"{unmatched:,} of {len(query):,} query images{which} have no gallery image of "
            f"their identity from another camera; the evaluation protocol skips them.",
            "expected only for partial data: unpack the complete archive for "
            "numbers comparable with the published ones.",
        )
    ]


def _listing(items: list) -> str:
    shown = "".join(f"\n  - {item}" for item in items[:_MAX_LISTED])
    more = len(items) - _MAX_LISTED
    return shown + (f"\n  ... and {more:,} more" if more > 0 else "")


def _summary(findings: list[Finding]) -> str:
    errors = sum(1 for finding in findings if finding.level == "error")
    warnings = sum(1 for finding in findings if finding.level == "warning")
    verdict = "fix the errors before evaluating" if errors else "ready for evaluation"
    return f"{errors} error(s), {warnings} warning(s): {verdict}."
