"""Read and validate the manifest: the one source of truth about the zoo.

The manifest is data (``manifest/*.json``, one file per architecture; the
fields are documented in ``manifest/README.md``).  This module turns it into
frozen dataclasses, refuses unknown or missing fields (naming the file and
the field), and resolves names: canonical names, torchreid's and
fast-reid's aliases, ``name.dataset`` and dataset short names (``market``,
``duke``, ``msmt``, ``veri776``, ...).
"""

from __future__ import annotations

import difflib
import fnmatch
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from modelzoo import config
from modelzoo.errors import ManifestError, UnknownCheckpointError, UnknownDatasetError, UnknownModelError
from modelzoo.formats.digest import is_sha256
from modelzoo.names import DATASET_NAMES, dataset_key, dataset_split

DATASETS = DATASET_NAMES
SOURCE_KINDS = ("http", "gdrive", "hf")
SOURCE_STATUSES = ("live", "quota-limited", "dead", "archived", "unknown")
LIVE_STATUSES = ("live", "quota-limited")
FORMATS = ("zip", "checkpoint")
DISTANCES = ("euclidean", "cosine")
ZOOS = ("torchreid", "fastreid")
#: Checkpoint layouts (the readers of ``modelzoo.formats.LAYOUTS``) and the options each takes in the manifest.
LAYOUT_OPTIONS: dict[str, tuple[str, ...]] = {"torchreid": (), "fastreid": ("era",)}
#: fast-reid networks normalise their input themselves, on the 0..255 scale: ``(x - 255 mean) / (255 std)``
#: (fastreid-zoo facts 0.5); its files hold those two buffers, which the reader checks against the preprocessing.
FASTREID_PIXEL_SCALE = 255.0


@dataclass(frozen=True)
class Source:
    """One host of a checkpoint file, and what is known about whether it still serves it.

    Attributes:
        url: where to ask (``https://...``, a Drive link, ``hf://owner/repo/path[@revision]``).
        kind: ``http``, ``gdrive`` or ``hf``.
        format: ``zip`` or ``checkpoint``: what this host serves.
        status: ``live``, ``quota-limited`` (Google Drive), ``dead`` (the host is gone),
            ``archived`` (an Internet Archive copy whose capture is unverified) or ``unknown``.
        since: the year a dead host died.
        sha256, size: of this host's file, where known (a container differs between hosts).
        note: where a fact about this source comes from.
    """

    url: str
    kind: str
    format: str
    status: str = "unknown"
    since: int | None = None
    sha256: str | None = None
    size: int | None = None
    note: str = ""

    @property
    def believed_live(self) -> bool:
        """True for a host believed to serve the file today (live or quota-limited)."""
        return self.status in LIVE_STATUSES

    def describe_status(self) -> str:
        """``live``, ``quota-limited``, ``dead since 2019``, ``archived copy, unverified``, ``unknown``."""
        if self.status == "dead":
            return f"dead since {self.since}" if self.since else "dead"
        return "archived copy, unverified" if self.status == "archived" else self.status


@dataclass(frozen=True)
class Result:
    """A published result of a checkpoint on one test dataset (percentages)."""

    dataset: str
    rank1: float
    mAP: float | None = None  # None where unpublished (VehicleID)
    rank5: float | None = None
    rank10: float | None = None
    mINP: float | None = None  # noqa: N815  (the metric's published name)
    split: str | None = None  # the test size (VehicleID, VERI-Wild): "small", "medium", "large"

    @property
    def published(self) -> dict[str, float]:
        """The published metrics by name (``rank1``, and whichever of ``mAP``, ``mINP``, ``rank5``, ``rank10`` are)."""
        values = {"rank1": self.rank1, "mAP": self.mAP, "mINP": self.mINP, "rank5": self.rank5, "rank10": self.rank10}
        return {name: value for name, value in values.items() if value is not None}

    @property
    def test_set(self) -> str:
        """The test dataset, with its split: ``"market1501"``, ``"vehicleid (small)"``."""
        return self.dataset if self.split is None else f"{self.dataset} ({self.split})"


@dataclass(frozen=True)
class Preprocessing:
    """The eval transform a checkpoint expects: resize, to tensor, normalise."""

    input_size: tuple[int, int]  # (height, width)
    interpolation: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    color_order: str  # "RGB": images are fed as RGB, never BGR


@dataclass(frozen=True)
class Checkpoint:
    """One trained weights file of a model."""

    model: str
    key: str  # e.g. "market1501", "msmt17_combineall", "imagenet"
    trained_on: str
    num_classes: int
    filename: str
    format: str
    distance: str
    sha256: str | None
    size: int | None
    preprocessing: Preprocessing
    sources: tuple[Source, ...]
    results: tuple[Result, ...]
    notes: str = ""
    weights_sha256: str | None = None  # the weights fingerprint (formats.weights_fingerprint), where pinned
    layout: str = "torchreid"  # how the file arranges the weights: a key of modelzoo.formats.LAYOUTS
    layout_options: Mapping[str, Any] = field(default_factory=dict, hash=False)  # fast-reid: {"era": "0.1.1"}
    builder_args: Mapping[str, Any] = field(default_factory=dict, hash=False)  # passed to the architecture's builder

    @property
    def name(self) -> str:
        """The two-part name ``model.key``."""
        return f"{self.model}.{self.key}"

    @property
    def believed_live(self) -> bool:
        """True when at least one source is believed to serve the file today."""
        return any(source.believed_live for source in self.sources)

    @property
    def reader_options(self) -> dict[str, Any]:
        """The options of the checkpoint's layout reader (``read_checkpoint(path, layout, **reader_options)``).

        ``layout_options``, and for a fast-reid file the ``pixel_mean`` /
        ``pixel_std`` buffers it must hold: 255 times the preprocessing's mean and std.
        """
        options = dict(self.layout_options)
        if self.layout == "fastreid":
            options["pixel_mean"] = tuple(FASTREID_PIXEL_SCALE * value for value in self.preprocessing.mean)
            options["pixel_std"] = tuple(FASTREID_PIXEL_SCALE * value for value in self.preprocessing.std)
        return options

    def result_on(self, dataset: str) -> Result | None:
        """The published result on ``dataset``, if there is one."""
        return next((r for r in self.results if r.dataset == dataset), None)

    @property
    def same_domain(self) -> Result | None:
        """The published result on the dataset it was trained on (None for cross-domain)."""
        return self.result_on(self.trained_on)

    @property
    def rank1(self) -> float | None:
        """Published same-domain Rank-1 (%)."""
        result = self.same_domain
        return result.rank1 if result else None

    @property
    def mAP(self) -> float | None:  # noqa: N802  (the field's published name)
        """Published same-domain mAP (%)."""
        result = self.same_domain
        return result.mAP if result else None


@dataclass(frozen=True)
class ModelRecord:
    """One architecture of the zoo with every checkpoint trained for it."""

    name: str
    aliases: tuple[str, ...]
    torchreid_name: str | None  # None for a model torchreid does not have (fast-reid's)
    params_m: float | None
    params_counted: str  # "without_classifier" | "total" (hacnn's published figure)
    loss: str
    input_size: tuple[int, int]
    from_scratch: bool
    feature_dim: int
    classifier_keys: tuple[str, ...]
    order: int
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=dict)
    source_file: str = ""
    zoo: str = "torchreid"  # the zoo that published it: "torchreid" or "fastreid"
    unreleased: tuple[Result, ...] = ()  # published results whose weights were never released

    @property
    def datasets(self) -> tuple[str, ...]:
        """Keys of its checkpoints, in manifest order."""
        return tuple(self.checkpoints)


# ---------------------------------------------------------------------------
# parsing with validation

_MODEL_FIELDS = {
    "name": str,
    "aliases": list,
    "torchreid_name": (str, type(None)),
    "params_m": (float, int, type(None)),
    "params_counted": str,
    "loss": str,
    "input_size": list,
    "from_scratch": bool,
    "feature_dim": int,
    "classifier_keys": list,
    "order": int,
    "checkpoints": dict,
}
_MODEL_OPTIONAL = {"zoo": str, "unreleased": list}
_CHECKPOINT_FIELDS = {
    "trained_on": str,
    "num_classes": int,
    "filename": str,
    "format": str,
    "distance": str,
    "sha256": (str, type(None)),
    "size": (int, type(None)),
    "preprocessing": dict,
    "sources": list,
    "results": list,
    "notes": str,
}
_CHECKPOINT_OPTIONAL = {"weights_sha256": (str, type(None)), "layout": str, "layout_options": dict,
                        "builder_args": dict}
_PREPROCESSING_FIELDS = {"input_size": list, "interpolation": str, "mean": list, "std": list, "color_order": str}
_SOURCE_FIELDS = {"url": str, "kind": str, "status": str}
_SOURCE_OPTIONAL = {"format": str, "since": int, "sha256": str, "size": int, "note": str}
_RESULT_FIELDS = {"dataset": str, "rank1": (float, int)}
_RESULT_OPTIONAL = {"mAP": (float, int), "mINP": (float, int), "rank5": (float, int), "rank10": (float, int),
                    "split": str}
_METRICS = ("mAP", "mINP", "rank5", "rank10")


def _check_fields(
    data: Any, required: dict, where: str, optional: dict | None = None
) -> dict:
    """Refuse a non-object, a missing or unknown field, or a field of the wrong type."""
    if not isinstance(data, dict):
        raise ManifestError(f"{where}: expected an object, got {type(data).__name__}")
    optional = optional or {}
    unknown = sorted(set(data) - set(required) - set(optional))
    if unknown:
        raise ManifestError(f"{where}: unknown field {unknown[0]!r} (see manifest/README.md)")
    for name, kind in required.items():
        if name not in data:
            raise ManifestError(f"{where}: missing field {name!r} (see manifest/README.md)")
    for name, kind in {**required, **optional}.items():
        value = data.get(name)
        if name in data and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            raise ManifestError(f"{where}: field {name!r} has the wrong type ({type(value).__name__})")
    return data


def _one_of(value: str, allowed: tuple[str, ...], where: str) -> str:
    if value not in allowed:
        raise ManifestError(f"{where}: {value!r} is not one of {', '.join(allowed)}")
    return value


def _pair(values: list, where: str) -> tuple[int, int]:
    if len(values) != 2 or not all(isinstance(v, int) and v > 0 for v in values):
        raise ManifestError(f"{where}: expected [height, width] as two positive integers")
    return (values[0], values[1])


def _parse_source(data: Any, default_format: str, where: str) -> Source:
    data = _check_fields(data, _SOURCE_FIELDS, where, _SOURCE_OPTIONAL)
    kind = _one_of(data["kind"], SOURCE_KINDS, f"{where}.kind")
    fmt = _one_of(data.get("format", default_format), FORMATS, f"{where}.format")
    status = _one_of(data["status"], SOURCE_STATUSES, f"{where}.status")
    if "since" in data and status != "dead":
        raise ManifestError(f"{where}.since: only a dead source has a year it died")
    _check_hash_and_size(data.get("sha256"), data.get("size"), where)
    return Source(url=data["url"], kind=kind, format=fmt, status=status, since=data.get("since"),
                  sha256=data.get("sha256"), size=data.get("size"), note=data.get("note", ""))


def _check_hash_and_size(sha256: str | None, size: int | None, where: str) -> None:
    if sha256 is not None and not is_sha256(sha256):
        raise ManifestError(f"{where}.sha256: expected 64 lowercase hex digits or null")
    if size is not None and size <= 0:
        raise ManifestError(f"{where}.size: expected a positive number of bytes or null")


def _parse_result(data: Any, where: str) -> Result:
    data = _check_fields(data, _RESULT_FIELDS, where, _RESULT_OPTIONAL)
    dataset = _one_of(data["dataset"], DATASETS, f"{where}.dataset")
    try:
        split = dataset_split(dataset, data.get("split"))
    except UnknownDatasetError as exc:
        raise ManifestError(f"{where}.split: {exc}") from None
    metrics = {k: float(data[k]) for k in _METRICS if k in data}
    return Result(dataset=dataset, rank1=float(data["rank1"]), split=split, **metrics)


def _parse_results(items: list, where: str) -> tuple[Result, ...]:
    """Results, each test set (dataset and split) at most once."""
    results = tuple(_parse_result(r, f"{where}[{i}]") for i, r in enumerate(items))
    seen = [r.test_set for r in results]
    twice = sorted({test_set for test_set in seen if seen.count(test_set) > 1})
    if twice:
        raise ManifestError(f"{where}: two results on {twice[0]}")
    return results


def _parse_layout(data: dict, where: str) -> tuple[str, dict[str, Any]]:
    """The checkpoint's layout and its options (exactly the options that layout takes)."""
    layout = _one_of(data.get("layout", "torchreid"), tuple(LAYOUT_OPTIONS), f"{where}.layout")
    options = dict(data.get("layout_options", {}))
    if sorted(options) != sorted(LAYOUT_OPTIONS[layout]):
        wanted = ", ".join(LAYOUT_OPTIONS[layout]) or "none"
        raise ManifestError(f"{where}.layout_options: the {layout} layout takes {wanted}, got {sorted(options)}")
    if not all(isinstance(value, str) for value in options.values()):
        raise ManifestError(f"{where}.layout_options: expected string values")
    return layout, options


def _triple(values: list) -> tuple[float, float, float]:
    first, second, third = (float(v) for v in values)
    return first, second, third


def _parse_preprocessing(data: Any, where: str) -> Preprocessing:
    data = _check_fields(data, _PREPROCESSING_FIELDS, where)
    for name in ("mean", "std"):
        if len(data[name]) != 3:
            raise ManifestError(f"{where}.{name}: expected three numbers (R, G, B)")
    return Preprocessing(
        input_size=_pair(data["input_size"], f"{where}.input_size"),
        interpolation=_one_of(data["interpolation"], ("bilinear", "bicubic", "nearest"), f"{where}.interpolation"),
        mean=_triple(data["mean"]),
        std=_triple(data["std"]),
        color_order=_one_of(data["color_order"], ("RGB",), f"{where}.color_order"),
    )


def _parse_checkpoint(model: str, key: str, data: Any, where: str) -> Checkpoint:
    data = _check_fields(data, _CHECKPOINT_FIELDS, where, _CHECKPOINT_OPTIONAL)
    layout, layout_options = _parse_layout(data, where)
    fmt = _one_of(data["format"], FORMATS, f"{where}.format")
    sources = tuple(_parse_source(s, fmt, f"{where}.sources[{i}]") for i, s in enumerate(data["sources"]))
    if not sources:
        raise ManifestError(f"{where}.sources: a checkpoint needs at least one source")
    sha256 = data["sha256"]
    _check_hash_and_size(sha256, data["size"], where)
    weights_sha256 = data.get("weights_sha256")
    if weights_sha256 is not None and not is_sha256(weights_sha256):
        raise ManifestError(f"{where}.weights_sha256: expected 64 lowercase hex digits or null")
    return Checkpoint(
        model=model,
        key=key,
        trained_on=data["trained_on"],
        num_classes=data["num_classes"],
        filename=data["filename"],
        format=fmt,
        distance=_one_of(data["distance"], DISTANCES, f"{where}.distance"),
        sha256=sha256,
        size=data["size"],
        preprocessing=_parse_preprocessing(data["preprocessing"], f"{where}.preprocessing"),
        sources=sources,
        results=_parse_results(data["results"], f"{where}.results"),
        notes=data["notes"],
        weights_sha256=weights_sha256,
        layout=layout,
        layout_options=layout_options,
        builder_args=dict(data.get("builder_args", {})),
    )


def parse_model(data: Any, source_file: str) -> ModelRecord:
    """Validate one manifest file's content and build its :class:`ModelRecord`."""
    data = _check_fields(data, _MODEL_FIELDS, source_file, _MODEL_OPTIONAL)
    name = data["name"]
    if Path(source_file).stem != name:
        raise ManifestError(f"{source_file}: field 'name' is {name!r} but the file is named {Path(source_file).name}")
    zoo = _one_of(data.get("zoo", "torchreid"), ZOOS, f"{source_file}: zoo")
    _check_names(name, data["aliases"], source_file)
    if zoo == "torchreid" and data["torchreid_name"] is None:
        raise ManifestError(f"{source_file}: torchreid_name: a torchreid model names its torchreid builder")
    checkpoints = {
        key: _parse_checkpoint(name, key, value, f"{source_file}: checkpoints.{key}")
        for key, value in data["checkpoints"].items()
    }
    return ModelRecord(
        name=name,
        aliases=tuple(data["aliases"]),
        torchreid_name=data["torchreid_name"],
        params_m=None if data["params_m"] is None else float(data["params_m"]),
        params_counted=_one_of(data["params_counted"], ("without_classifier", "total"), f"{source_file}: params_counted"),
        loss=data["loss"],
        input_size=_pair(data["input_size"], f"{source_file}: input_size"),
        from_scratch=data["from_scratch"],
        feature_dim=data["feature_dim"],
        classifier_keys=tuple(data["classifier_keys"]),
        order=data["order"],
        checkpoints=checkpoints,
        source_file=source_file,
        zoo=zoo,
        unreleased=_parse_results(data.get("unreleased", []), f"{source_file}: unreleased"),
    )


def _check_names(name: str, aliases: list, source_file: str) -> None:
    """Names are looked up lower-cased, so one with a capital letter could never be found."""
    for each in (name, *aliases):
        if not isinstance(each, str) or each != each.lower() or not each or "." in each:
            raise ManifestError(f"{source_file}: name {each!r} must be lower case, without '.' "
                                "(lookups lower-case the name; '.' separates the checkpoint tag)")


def read_manifest(directory: Path | None = None) -> dict[str, ModelRecord]:
    """Read every ``*.json`` file of the manifest folder, in natural order."""
    directory = Path(directory) if directory else config.manifest_dir()
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ManifestError(f"no manifest files (*.json) in {directory}: the installation is incomplete")
    records = []
    for path in files:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path.name}: not valid JSON ({exc})") from exc
        records.append(parse_model(data, path.name))
    records.sort(key=lambda r: (r.order, r.name))
    _check_unique_names(records)
    return {r.name: r for r in records}


def _check_unique_names(records: list[ModelRecord]) -> None:
    seen: dict[str, str] = {}
    for record in records:
        for name in (record.name, *record.aliases):
            if name in seen:
                raise ManifestError(f"{record.source_file}: name {name!r} is also used by {seen[name]}")
            seen[name] = record.source_file


@lru_cache(maxsize=1)
def _default_manifest() -> dict[str, ModelRecord]:
    return read_manifest()


def models() -> dict[str, ModelRecord]:
    """The zoo's records by canonical name (read once, then cached)."""
    return _default_manifest()


def reload() -> None:
    """Forget the cached manifest: the next lookup reads the folder again (after editing it)."""
    _default_manifest.cache_clear()


# ---------------------------------------------------------------------------
# names

def _alias_table() -> dict[str, str]:
    table = {}
    for record in models().values():
        table[record.name] = record.name
        table.update({alias: record.name for alias in record.aliases})
    return table


def resolve_name(name: str) -> ModelRecord:
    """The record for a canonical name or alias; raises UnknownModelError with suggestions."""
    model_name, tag = split_name(name)
    if tag is not None:
        raise UnknownModelError(
            f"{name!r} names a checkpoint, not a model: use the model name {model_name!r} "
            "(and look the checkpoint up in its .checkpoints), or a function that takes checkpoints"
        )
    table = _alias_table()
    key = model_name.lower()
    if key in table:
        return models()[table[key]]
    close = difflib.get_close_matches(key, list(table), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise UnknownModelError(f"unknown model {name!r}.{hint} Run `modelzoo list` to see every model.")


def split_name(name: str) -> tuple[str, str | None]:
    """``"osnet_x1_0.msmt17"`` -> ``("osnet_x1_0", "msmt17")``; a name without a tag -> ``(name, None)``."""
    if not isinstance(name, str) or not name.strip():
        raise UnknownModelError(f"expected a model name such as 'osnet_x1_0', got {name!r}")
    model, dot, tag = name.strip().partition(".")
    return model, (tag if dot else None)


def resolve_checkpoint(name: str, dataset: str | None = None) -> Checkpoint:
    """The checkpoint for ``name`` and ``dataset``, or for ``name.dataset``.

    Without a dataset, the model's first checkpoint (Market-1501 for every seed
    model) is chosen.

    Raises:
        UnknownModelError: no such model.
        UnknownCheckpointError: the model has no such checkpoint (or none at
            all), or ``name.tag`` and ``dataset`` disagree.
    """
    model_name, tag = split_name(name)
    if tag is not None and dataset is not None and dataset_key(tag) != dataset_key(dataset):
        raise UnknownCheckpointError(
            f"{name!r} names checkpoint {tag!r} but dataset={dataset!r} was also given; give one of them"
        )
    dataset = dataset if dataset is not None else tag
    record = resolve_name(model_name)
    if not record.checkpoints:
        raise UnknownCheckpointError(f"{record.name} has no trained checkpoint in the zoo.")
    if dataset is None:
        return next(iter(record.checkpoints.values()))
    key = dataset_key(dataset)
    if key not in record.checkpoints:
        have = ", ".join(record.checkpoints)
        unreleased = " (a result on it was published, but its weights never were)" \
            if any(r.dataset == key for r in record.unreleased) else ""
        raise UnknownCheckpointError(
            f"{record.name} has no checkpoint for dataset {dataset!r}{unreleased}; it has: {have}. "
            f"Run `modelzoo info {record.name}` for details."
        )
    return record.checkpoints[key]


def checkpoint_info(name: str, dataset: str | None = None) -> Checkpoint:
    """The manifest record of a checkpoint: ``checkpoint_info("osnet_x1_0.msmt17").rank1 == 74.9``.

    Args:
        name: ``name.tag``, or a model name with ``dataset`` (default: its first checkpoint).
        dataset: the checkpoint's key when ``name`` has no tag.

    Raises:
        UnknownModelError, UnknownCheckpointError: as :func:`resolve_checkpoint`.
    """
    return resolve_checkpoint(name, dataset)


def list_models(pattern: str | None = None, dataset: str | None = None) -> list[str]:
    """Canonical model names in natural (zoo) order.

    Args:
        pattern: an fnmatch pattern (``"osnet*"``), matched against canonical
            names and aliases.
        dataset: keep only models with a checkpoint for this dataset key
            (``"market1501"``, ``"duke"``, ``"msmt17_combineall"``, ...).

    Raises:
        UnknownCheckpointError: no model of the zoo has a checkpoint for ``dataset``.
    """
    wanted = _checked_key(dataset)
    names = []
    for record in models().values():
        if pattern and not _matches(record, pattern):
            continue
        if wanted and wanted not in record.checkpoints:
            continue
        names.append(record.name)
    return names


def list_checkpoints(pattern: str | None = None, dataset: str | None = None, *, live: bool | None = None) -> list[str]:
    """Every checkpoint as ``name.tag`` (timm's ``list_pretrained``), in zoo order.

    Args:
        pattern: an fnmatch pattern matched against ``name.tag`` and against
            the model's names alone (``"osnet*"``, ``"*.msmt17"``).
        dataset: keep only checkpoints with this key (aliases accepted).
        live: True keeps only checkpoints with a source believed live; False
            only those without one (a dead or archived host alone).

    Raises:
        UnknownCheckpointError: no model of the zoo has a checkpoint for ``dataset``.
    """
    wanted = _checked_key(dataset)
    names = []
    for record in models().values():
        for checkpoint in record.checkpoints.values():
            if wanted and checkpoint.key != wanted:
                continue
            if live is not None and checkpoint.believed_live != live:
                continue
            if pattern and not (_matches(record, pattern) or fnmatch.fnmatchcase(checkpoint.name, pattern.lower())):
                continue
            names.append(checkpoint.name)
    return names


def _matches(record: ModelRecord, pattern: str) -> bool:
    return any(fnmatch.fnmatchcase(n, pattern.lower()) for n in (record.name, *record.aliases))


def _checked_key(dataset: str | None) -> str | None:
    """The normalised checkpoint key, refused when no model has a checkpoint of that key."""
    if dataset is None:
        return None
    key = dataset_key(dataset)
    keys = {k for record in models().values() for k in record.checkpoints}
    if key not in keys:
        raise UnknownCheckpointError(
            f"no checkpoint of the zoo is trained on {dataset!r}; the keys are: {', '.join(sorted(keys))}"
        )
    return key
