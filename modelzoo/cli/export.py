"""``modelzoo export``: a zoo network as an ONNX file, checked against PyTorch."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelzoo.cli._values import check_output_file


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export command."""
    p = subparsers.add_parser("export", help="export a trained network to ONNX (checked with ONNX Runtime)")
    p.add_argument("name", help="model or checkpoint name.dataset")
    p.add_argument("dataset", nargs="?", help="which checkpoint (default: the model's first)")
    p.add_argument("-o", "--output", type=Path, help="the .onnx file (default: NAME.DATASET.onnx here)")
    p.add_argument("--no-check", action="store_true", help="keep the file without comparing it with PyTorch")
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from modelzoo import manifest
    from modelzoo.export import export_onnx

    checkpoint = manifest.resolve_checkpoint(args.name, args.dataset)
    output = args.output or Path(f"{checkpoint.name}.onnx")
    check_output_file(output, "-o/--output")
    try:
        path, check = export_onnx(checkpoint.name, output, check=not args.no_check)
    except ImportError as exc:
        print(f"modelzoo: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    if check is not None:
        print(check.summary())
    return 0
