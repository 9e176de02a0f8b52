"""``modelzoo list`` and ``modelzoo info``: what the zoo holds."""

from __future__ import annotations

import argparse
import dataclasses
import json

from modelzoo import config, manifest, table


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``list`` and ``info`` commands."""
    p = subparsers.add_parser("list", help="list the models of the zoo with their published results")
    p.add_argument("pattern", nargs="?", help="fnmatch pattern, e.g. 'osnet*'")
    p.add_argument("--dataset", help="only models with a checkpoint for this dataset")
    p.add_argument("--json", action="store_true", help="print the manifest records as JSON")
    p.set_defaults(handler=run_list)

    p = subparsers.add_parser("info", help="one model's card: every checkpoint and source")
    p.add_argument("name", help="model name or alias (name.dataset: only that checkpoint)")
    p.add_argument("--json", action="store_true", help="print the record as JSON")
    p.set_defaults(handler=run_info)


def _as_json(record: manifest.ModelRecord) -> dict:
    data = dataclasses.asdict(record)
    data.pop("source_file", None)
    return data


def run_list(args: argparse.Namespace) -> int:
    names = manifest.list_models(args.pattern, args.dataset)
    records = [manifest.models()[n] for n in names]
    if args.json:
        print(json.dumps([_as_json(r) for r in records], indent=2))
        return 0
    if not records:
        print("no model matches; run `modelzoo list` without arguments to see them all")
        return 0
    torchreid, fastreid = table.of_zoo(records, "torchreid"), table.of_zoo(records, "fastreid")
    print("\n\n".join(part for part in (_torchreid_listing(torchreid), _fastreid_listing(fastreid)) if part))
    return 0


def _torchreid_listing(records: list[manifest.ModelRecord]) -> str:
    """torchreid's table, its extra checkpoints and legend; empty without records."""
    if not records:
        return ""
    lines = ["torchreid", table.plain(records)]
    if table.extra_rows(records):
        lines += ["", "More checkpoints (cross-domain, MSMT17 combineall, ImageNet):", table.extra_plain(records)]
    lines += ["", "* trained from scratch   † includes the classifier (hacnn)   Rank-1 (mAP) in %",
              "§ no source believed live: the only host is dead (QMUL, 2019) and an archived copy is unverified; "
              "see `modelzoo sources check`"]
    return "\n".join(lines)


def _fastreid_listing(records: list[manifest.ModelRecord]) -> str:
    """fast-reid's table, its vehicle checkpoints and legend; empty without records."""
    if not records:
        return ""
    lines = ["fast-reid", table.fastreid_plain(records)]
    if table.vehicle_rows(records):
        lines += ["", "Vehicle checkpoints:", table.vehicle_plain(records)]
    lines += ["", "Rank-1 / mAP / mINP in %   ‡ published, weights never released   - not published"]
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    model, tag = manifest.split_name(args.name)
    record = manifest.resolve_name(model)
    only = manifest.resolve_checkpoint(args.name).key if tag is not None else None
    if args.json:
        data = _as_json(record)
        if only is not None:
            data["checkpoints"] = {only: data["checkpoints"][only]}
        print(json.dumps(data, indent=2))
        return 0
    print(format_card(record, only))
    return 0


def _cached_fingerprint(checkpoint: manifest.Checkpoint) -> str:
    """``; cached: <fingerprint>`` when the checkpoint is in the cache (read from its record, cheap)."""
    from modelzoo.fetch.download import store_for

    record = store_for(checkpoint, config.fetch_settings()).read_record()
    return f"; cached {record.fingerprint}" if record is not None and record.fingerprint else ""


def format_card(record: manifest.ModelRecord, only: str | None = None) -> str:
    """A human-readable card for one model (``only``: show just that checkpoint)."""
    counted = "including the classifiers" if record.params_counted == "total" else "without the classifier"
    params = f"{table.params_cell(record)} M ({counted})" if record.params_m is not None else "not published"
    lines = [
        record.name + (f" (aliases: {', '.join(record.aliases)})" if record.aliases else ""),
        f"  zoo         {record.zoo}",
        f"  params      {params}",
        f"  loss        {record.loss}",
        f"  input       {record.input_size[0]}x{record.input_size[1]} (height x width), RGB, ImageNet mean/std",
        f"  feature     {record.feature_dim}-d embedding in eval mode",
        f"  scratch     {'yes (trained from scratch)' if record.from_scratch else 'no (ImageNet initialisation)'}",
        "  checkpoints",
    ]
    for ckpt in record.checkpoints.values():
        if only is None or ckpt.key == only:
            lines += _checkpoint_lines(record, ckpt)
    if record.unreleased and only is None:
        lines.append("  unreleased  " + _results_text(record.unreleased) + " (published; the weights never were)")
    return "\n".join(lines)


def _results_text(results: tuple[manifest.Result, ...]) -> str:
    return ", ".join(f"{r.test_set}: {table.describe_result(r)}" for r in results) or "no re-ID results"


def _checkpoint_lines(record: manifest.ModelRecord, ckpt: manifest.Checkpoint) -> list[str]:
    """The card's lines for one checkpoint: results, input when it differs, file and layout, builder, sources."""
    pre = ckpt.preprocessing
    layout = "" if ckpt.layout == "torchreid" else f", {ckpt.layout} layout" + "".join(
        f", {key} {value}" for key, value in ckpt.layout_options.items())
    lines = [
        f"    {ckpt.name}  (trained on {ckpt.trained_on}, {ckpt.num_classes} classes, {ckpt.distance} distance)",
        f"      published  {_results_text(ckpt.results)}",
    ]
    if pre.input_size != record.input_size or pre.interpolation != "bilinear":
        lines.append(f"      input      {pre.input_size[0]}x{pre.input_size[1]}, {pre.interpolation} resize")
    lines.append(f"      file       {ckpt.filename} ({ckpt.format}{layout}); sha256 {ckpt.sha256 or 'not published'}; "
                 f"size {ckpt.size or 'unknown'}")
    lines.append(f"      weights    fingerprint {ckpt.weights_sha256 or 'not pinned'}{_cached_fingerprint(ckpt)}")
    if ckpt.builder_args:
        lines.append("      builder    " + ", ".join(f"{key}={value}" for key, value in ckpt.builder_args.items()))
    if not ckpt.believed_live:
        lines.append("      warning    no source believed live: a download will most likely fail "
                     "(`modelzoo sources check`, or `modelzoo import` a copy you have)")
    lines += [f"      source     [{s.kind}, {s.describe_status()}] {s.url}" for s in ckpt.sources]
    if ckpt.notes:
        lines.append(f"      note       {ckpt.notes}")
    return lines
