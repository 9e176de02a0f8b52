"""``modelzoo eval``, ``verify``, ``doctor`` and ``demo``: measure the zoo."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from pathlib import Path

from modelzoo.cli._values import check_output_folder, check_precision, non_negative_int, points, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the evaluation commands."""
    p = subparsers.add_parser("eval", help="evaluate one model on one dataset")
    p.add_argument("name", help="model (its checkpoint trained on DATASET) or checkpoint name.dataset")
    p.add_argument("dataset", help="test dataset: market1501, dukemtmcreid, msmt17, veri, vehicleid, veriwild")
    p.add_argument("--split", choices=("small", "medium", "large"),
                   help="test size of vehicleid and veriwild (required there)")
    _evaluation_options(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run_eval)

    p = subparsers.add_parser("verify", help="evaluate checkpoints and compare them with the published numbers")
    p.add_argument("names", nargs="*", metavar="NAME", help="models or checkpoints (default: all)")
    p.add_argument("--dataset", action="append", dest="datasets", metavar="D", help="only these test datasets")
    p.add_argument("--tolerance", type=points, default=0.5, help="allowed |difference| in points (default 0.5)")
    p.add_argument("--report-dir", type=Path, help="write report.json, report.md and cmc.png here")
    _evaluation_options(p)
    p.set_defaults(handler=run_verify)

    p = subparsers.add_parser("doctor", help="check a dataset folder against the real dataset's layout")
    p.add_argument("dataset", help="market1501, dukemtmcreid, msmt17, veri, vehicleid or veriwild")
    p.add_argument("--data-root", required=True, type=Path, help="torchreid's data folder or the dataset folder")
    p.set_defaults(handler=run_doctor)

    p = subparsers.add_parser("demo", help="offline end-to-end run on synthetic data (no network needed)")
    p.add_argument("--workdir", type=Path, help="keep the synthetic data, cache and report here")
    p.add_argument("--model", default="osnet_x0_25",
                   help="architecture to run, of either zoo (default osnet_x0_25; e.g. bot_r50 for fast-reid's)")
    p.set_defaults(handler=run_demo)


def _evaluation_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-root", required=True, type=Path, help="torchreid's data folder or the dataset folder")
    p.add_argument("--device", help="cpu, cuda, cuda:N (default: CUDA when available)")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--workers", type=non_negative_int, help="image decoding processes (0: in this process)")
    p.add_argument("--backend", choices=("torch", "onnxruntime", "openvino", "tensorrt"), default="torch",
                   help="the runtime computing the features, compiled once and checked against PyTorch "
                        "(default torch)")
    if p.prog.split()[-1] != "verify":  # verify compares with published numbers: always fp32
        p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                       help="fp32 is the published setting; bf16 (native CPUs, CUDA) and fp16 (CUDA) are faster")
    p.add_argument("--rerank", action="store_true", help="k-reciprocal re-ranking (not the published setting)")
    p.add_argument("--aqe", action="store_true",
                   help="average query expansion, fast-reid's k 5, alpha 3 (not the published setting)")
    p.add_argument("--flip", action="store_true",
                   help="average each embedding with its mirror image's (not the published setting)")
    p.add_argument("--trials", type=positive_int, metavar="N",
                   help="vehicleid only: average over N seeded random galleries (default 10)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _check_evaluation_values(args: argparse.Namespace) -> None:
    """What parses but cannot work, refused before any download or decoding."""
    from modelzoo import config

    check_precision(args.device, args.backend, getattr(args, "precision", "fp32"))
    config.distributed_env()  # a WORLD_SIZE or RANK that makes no sense: say so now
    if getattr(args, "report_dir", None) is not None:
        check_output_folder(args.report_dir, "--report-dir")


def _evaluation_kwargs(args: argparse.Namespace) -> dict:
    return dict(
        device=args.device, batch_size=args.batch_size, num_workers=args.workers,
        precision=getattr(args, "precision", "fp32"), backend=args.backend, rerank=args.rerank, aqe=args.aqe,
        flip=args.flip, progress=not args.no_progress,
    )


@contextlib.contextmanager
def _torchrun_group(device: str | None) -> Iterator[bool]:
    """Under ``torchrun``: join its process group for the command, and leave it after; yields whether joined.

    The command asks for distribution; the library never starts a group by itself.
    """
    import torch.distributed as dist

    from modelzoo.inference.distributed import init_from_torchrun

    already = dist.is_available() and dist.is_initialized()
    joined = init_from_torchrun(device)
    try:
        yield joined
    finally:
        if joined and not already:
            dist.destroy_process_group()


def _is_first_rank(joined: bool) -> bool:
    import torch.distributed as dist

    return not joined or dist.get_rank() == 0


def run_eval(args: argparse.Namespace) -> int:
    import json

    from modelzoo.evaluation.pipeline import evaluate

    _check_evaluation_values(args)
    with _torchrun_group(args.device) as joined:
        result = evaluate(args.name, args.dataset, args.data_root, split=args.split, trials=args.trials,
                          distributed=joined, **_evaluation_kwargs(args))
        if _is_first_rank(joined):  # under torchrun every rank has the result; rank 0 prints it
            print(json.dumps(result.to_dict(), indent=2) if args.json else result.summary())
    return 0


def run_verify(args: argparse.Namespace) -> int:
    from modelzoo.evaluation.verify import markdown_table, verify, write_report

    _check_evaluation_values(args)
    with _torchrun_group(args.device) as joined:
        rows = verify(args.names, args.datasets, data_root=args.data_root, tolerance=args.tolerance,
                      trials=args.trials, distributed=joined, **_evaluation_kwargs(args))
        first = _is_first_rank(joined)
    failed = sum(not r.passed for r in rows)
    if not first:  # under torchrun every rank has the same rows; rank 0 reports them
        return 1 if failed else 0
    print(markdown_table(rows))
    for row in rows:
        if row.error:
            print(f"\n{row.checkpoint} on {row.test_set}: {row.error}")
    if args.report_dir:
        for path in write_report(rows, args.report_dir):
            print(f"wrote {path}")
    print(f"\n{len(rows) - failed} passed, {failed} failed (tolerance ±{args.tolerance} points)")
    return 1 if failed else 0


def run_doctor(args: argparse.Namespace) -> int:
    from modelzoo.datasets.doctor import doctor

    code, text = doctor(args.dataset, args.data_root)
    print(text)
    return code


def run_demo(args: argparse.Namespace) -> int:
    from modelzoo.demo import run_demo

    if args.workdir is not None:
        check_output_folder(args.workdir, "--workdir")
    return run_demo(workdir=args.workdir, model=args.model, say=print)
