"""``modelzoo download``, ``modelzoo import`` and ``modelzoo cache``."""

from __future__ import annotations

import argparse
import sys

from modelzoo import config, fetch, manifest
from modelzoo.errors import ModelZooError
from modelzoo.manifest import Checkpoint


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``download``, ``import``, ``cache`` and ``sources`` commands."""
    p = subparsers.add_parser(
        "download",
        help="download checkpoints into the cache (verified, extracted)",
        description="Download checkpoints into the cache. Sources: MODELZOO_MIRROR bases first, then the manifest's.",
    )
    p.add_argument("name", nargs="?", help="model name, alias or name.dataset (optional with --all)")
    p.add_argument("datasets", nargs="*", metavar="DATASET", help="dataset keys, e.g. market1501 duke msmt17")
    p.add_argument("--all", action="store_true", help="every checkpoint of NAME, or of the whole zoo without NAME")
    p.add_argument("--force", action="store_true", help="download again even when cached")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_download)

    p = subparsers.add_parser(
        "import",
        help="register a checkpoint file obtained by hand",
        description="Verify a file you downloaded yourself, extract it if it is a zip, and put it in the cache.",
    )
    p.add_argument("name", help="model name or alias")
    p.add_argument("dataset", help="dataset key, e.g. market1501")
    p.add_argument("file", help="the downloaded file (the zip, or the bare weights file)")
    p.set_defaults(handler=run_import)

    p = subparsers.add_parser("sources", help="check that every source still serves its file (no download)")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    sub = actions.add_parser(
        "check", help="ask every source of the named (or all) checkpoints whether it still serves the file",
        description="One bounded request per source (a one-byte Range request, Drive's confirmation step, the Hub's "
                    "metadata call), in parallel. Exit code 1 when a checkpoint has no working source.")
    sub.add_argument("names", nargs="*", metavar="NAME", help="models or name.dataset (default: every checkpoint)")
    sub.add_argument("--json", action="store_true", help="print every answer as JSON")
    sub.add_argument("--workers", type=int, default=8, help="requests in parallel (default 8)")
    sub.set_defaults(handler=run_sources_check)

    p = subparsers.add_parser("cache", help="list, locate, verify or clear cached checkpoints")
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    actions.required = True
    for action, text, handler in (
        ("list", "list cached checkpoints", run_cache_list),
        ("path", "print the cache folder, or a cached checkpoint's file", run_cache_path),
        ("verify", "hash cached files again and compare with their records", run_cache_verify),
        ("clear", "delete cached checkpoints", run_cache_clear),
    ):
        sub = actions.add_parser(action, help=text)
        sub.add_argument("name", nargs="?", help="model name or name.dataset (default: everything)")
        sub.set_defaults(handler=handler)
        if action == "clear":
            sub.add_argument(
                "--forget-hashes",
                action="store_true",
                help="also forget the hashes trusted since the first download",
            )


def _checkpoints_to_download(args: argparse.Namespace) -> list[Checkpoint]:
    if args.name is None:
        return [c for record in manifest.models().values() for c in record.checkpoints.values()]
    if args.all:
        name = args.name.split(".", 1)[0]
        return list(manifest.resolve_name(name).checkpoints.values())
    if not args.datasets:
        return [manifest.resolve_checkpoint(args.name)]
    return [manifest.resolve_checkpoint(args.name, dataset) for dataset in args.datasets]


def run_download(args: argparse.Namespace) -> int:
    """Download each selected checkpoint; print its cached path."""
    if args.name is None and not args.all:
        print("modelzoo download: error: give a model NAME, or --all for the whole zoo", file=sys.stderr)
        return 2
    from modelzoo.models import download  # checks each new file fits its architecture (imports torch)

    checkpoints = _checkpoints_to_download(args)
    if len(checkpoints) == 1:
        print(download(checkpoints[0], progress=not args.no_progress, force=args.force))
        return 0
    failed = 0
    for checkpoint in checkpoints:
        try:
            path = download(checkpoint, progress=not args.no_progress, force=args.force)
        except ModelZooError as exc:
            failed += 1
            print(f"modelzoo: error: {checkpoint.name}: {exc}", file=sys.stderr)
            continue
        print(f"{checkpoint.name}\t{path}")
    if failed:
        print(f"modelzoo: {failed} of {len(checkpoints)} checkpoints failed", file=sys.stderr)
    return 1 if failed else 0


def run_import(args: argparse.Namespace) -> int:
    """Verify and cache a file obtained by hand."""
    from modelzoo.models import import_file  # checks the file fits its architecture (imports torch)

    checkpoint = manifest.resolve_checkpoint(args.name, args.dataset)
    try:
        path = import_file(checkpoint, args.file)
    except ModelZooError:
        raise
    except FileNotFoundError as exc:  # a wrong path typed by the user: one line, no traceback
        print(f"modelzoo: error: {exc}", file=sys.stderr)
        return 1
    print(path)
    print(f"weights fingerprint {_fingerprint_of(checkpoint)} (the same weights in any container give this hash)",
          file=sys.stderr)
    return 0


def _fingerprint_of(checkpoint: Checkpoint) -> str:
    from modelzoo.fetch.download import store_for

    record = store_for(checkpoint, config.fetch_settings()).read_record()
    return record.fingerprint if record is not None else "unknown"


def run_cache_list(args: argparse.Namespace) -> int:
    """One line per cached checkpoint: name, size, sha256 prefix, path."""
    entries = fetch.list_cached(args.name)
    if not entries:
        print(f"no checkpoint cached under {config.checkpoints_dir()}")
        return 0
    for entry in entries:
        print(f"{entry.name}\t{_human_size(entry.size)}\tsha256:{entry.sha256[:12]}\t{entry.path}")
    return 0


def _human_size(size: float) -> str:
    for unit in ("B", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"


def run_cache_path(args: argparse.Namespace) -> int:
    """The cache folder, or the cached file of NAME (exit 1 when not cached)."""
    if args.name is None:
        print(config.checkpoints_dir())
        return 0
    checkpoint = manifest.resolve_checkpoint(args.name)
    path = fetch.cached_path(checkpoint)
    if path is None:
        model, key = checkpoint.model, checkpoint.key
        print(
            f"modelzoo: {checkpoint.name} is not cached; run `modelzoo download {model} {key}`",
            file=sys.stderr,
        )
        return 1
    print(path)
    return 0


def run_cache_verify(args: argparse.Namespace) -> int:
    """Re-hash cached files; exit 1 when any changed."""
    results = fetch.verify_cached(args.name)
    if not results:
        print("nothing cached to verify")
        return 0
    for result in results:
        status = "ok" if result.ok else "FAILED"
        detail = f": {result.problem}" if result.problem else ""
        print(f"{status}\t{result.name}\t{result.path}{detail}", file=sys.stdout if result.ok else sys.stderr)
    bad = sum(not r.ok for r in results)
    return 1 if bad else 0


def run_cache_clear(args: argparse.Namespace) -> int:
    """Delete cached checkpoints."""
    removed = fetch.clear_cache(args.name, forget_hashes=args.forget_hashes)
    if not removed:
        print("nothing to clear")
    for name in removed:
        print(f"removed {name}")
    return 0


def _named_checkpoints(names: list[str]) -> list[Checkpoint]:
    if not names:
        return [c for record in manifest.models().values() for c in record.checkpoints.values()]
    chosen = []
    for name in names:
        model, tag = manifest.split_name(name)
        chosen += [manifest.resolve_checkpoint(name)] if tag else list(manifest.resolve_name(model).checkpoints.values())
    return chosen


def run_sources_check(args: argparse.Namespace) -> int:
    """Probe every source; exit 1 when a checkpoint has no working source."""
    import json

    from modelzoo.fetch.probe import check_sources, working_checkpoints

    probes = check_sources(_named_checkpoints(args.names), config.fetch_settings(), workers=args.workers)
    working = working_checkpoints(probes)
    broken = [name for name, ok in working.items() if not ok]
    if args.json:
        print(json.dumps({"sources": [p.to_dict() for p in probes], "without_a_working_source": broken}, indent=2))
        return 1 if broken else 0
    for probe in probes:
        size = "" if probe.size is None else f"{probe.size} bytes" + ("" if probe.size_matches is not False else " (!)")
        validators = " ".join(v for v in (probe.etag, probe.last_modified) if v)
        print("\t".join(("ok" if probe.ok else "FAIL", probe.checkpoint, probe.source, f"[{probe.known_status}]",
                         probe.detail, size, validators)).rstrip())
    print(f"\n{len(working) - len(broken)} of {len(working)} checkpoints have a working source")
    if broken:
        print("without a working source: " + ", ".join(broken), file=sys.stderr)
    return 1 if broken else 0
