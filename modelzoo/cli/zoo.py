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
    print(table.plain(records))
    if table.extra_rows(records):
        print("\nMore checkpoints (cross-domain, MSMT17 combineall, ImageNet):")
        print(table.extra_plain(records))
    print("\n* trained from scratch   † includes the classifier (hacnn)   Rank-1 (mAP) in %\n"
          "‡ no source believed live: the only host is dead (QMUL, 2019) and an archived copy is unverified; "
          "see `modelzoo sources check`")
    return 0


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
    lines = [
        record.name + (f" (aliases: {', '.join(record.aliases)})" if record.aliases else ""),
        f"  params      {table.params_cell(record)} M ({counted})",
        f"  loss        {record.loss}",
        f"  input       {record.input_size[0]}x{record.input_size[1]} (height x width), RGB, ImageNet mean/std",
        f"  feature     {record.feature_dim}-d embedding in eval mode",
        f"  scratch     {'yes (trained from scratch)' if record.from_scratch else 'no (ImageNet initialisation)'}",
        "  checkpoints",
    ]
    for ckpt in record.checkpoints.values():
        if only is not None and ckpt.key != only:
            continue
        results = ", ".join(f"{r.dataset}: R1 {r.rank1:.1f} mAP {r.mAP:.1f}" for r in ckpt.results) or "no re-ID results"
        lines += [
            f"    {ckpt.name}  (trained on {ckpt.trained_on}, {ckpt.num_classes} classes, {ckpt.distance} distance)",
            f"      published  {results}",
            f"      file       {ckpt.filename} ({ckpt.format}); sha256 {ckpt.sha256 or 'not published'}; "
            f"size {ckpt.size or 'unknown'}",
            f"      weights    fingerprint {ckpt.weights_sha256 or 'not pinned'}{_cached_fingerprint(ckpt)}",
        ]
        if not ckpt.believed_live:
            lines.append("      warning    no source believed live: a download will most likely fail "
                         "(`modelzoo sources check`, or `modelzoo import` a copy you have)")
        lines += [f"      source     [{s.kind}, {s.describe_status()}] {s.url}" for s in ckpt.sources]
        if ckpt.notes:
            lines.append(f"      note       {ckpt.notes}")
    return "\n".join(lines)
