"""``modelzoo export``: a zoo network as ONNX, OpenVINO IR, TorchScript or a TensorRT engine, checked against PyTorch.

With ``--check-accuracy --data-root DIR`` the exported file is also
evaluated on a test set, next to the PyTorch model: what the format costs in
Rank-1 and mAP.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from modelzoo.cli._values import as_options, check_output_file, non_negative_int, positive_int
from modelzoo.errors import UsageError

FORMATS = ("onnx", "openvino", "torchscript", "tensorrt")
#: A library message's ``backend='...'`` in this command's words.
FORMAT_OF_BACKEND = {"onnxruntime": "--format onnx", "openvino": "--format openvino", "tensorrt": "--format tensorrt"}


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the export command."""
    p = subparsers.add_parser("export", help="export a trained network (ONNX, OpenVINO, TorchScript, TensorRT), "
                                             "checked against PyTorch")
    p.add_argument("name", help="model or checkpoint name.dataset")
    p.add_argument("dataset", nargs="?", help="which checkpoint (default: the model's first)")
    p.add_argument("--format", choices=FORMATS, default="onnx",
                   help="onnx (default), openvino (.xml + .bin), torchscript (.pt) or tensorrt (.engine, CUDA only)")
    p.add_argument("-o", "--output", type=Path,
                   help="the file to write (default: NAME.DATASET.onnx|.xml|.pt|.engine here)")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32",
                   help="fp32 (default); bf16 for openvino on CPUs with native bf16; fp16 for tensorrt")
    p.add_argument("--device", help="where the file is checked: cpu, cuda, cuda:N (default: cuda for tensorrt, "
                                    "else cpu)")
    p.add_argument("--no-check", action="store_true", help="keep the file without comparing it with PyTorch")
    accuracy = p.add_argument_group("accuracy of the exported file (next to PyTorch's)")
    accuracy.add_argument("--check-accuracy", action="store_true",
                          help="evaluate the exported file and the PyTorch model on a test set (needs --data-root)")
    accuracy.add_argument("--data-root", type=Path, help="torchreid's data folder or the dataset folder")
    accuracy.add_argument("--eval-dataset", metavar="D",
                          help="the test set (default: the checkpoint's first published one)")
    accuracy.add_argument("--split", choices=("small", "medium", "large"), help="test size of vehicleid and veriwild")
    accuracy.add_argument("--batch-size", type=positive_int, default=64)
    accuracy.add_argument("--workers", type=non_negative_int, help="image decoding processes (0: in this process)")
    accuracy.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(handler=run_export)


def run_export(args: argparse.Namespace) -> int:
    from modelzoo import get, manifest
    from modelzoo.export import check_accuracy, export

    _check_format(args)
    checkpoint = manifest.resolve_checkpoint(args.name, args.dataset)
    test_set, split = _test_set(args, checkpoint)
    output = _output(args, checkpoint.name)
    model = get(checkpoint.name, device="cpu", progress=not args.no_progress)
    try:
        result = export(model, output, format=args.format, precision=args.precision, check=not args.no_check,
                        device=args.device)
    except ImportError as exc:  # a package of the format, not installed
        print(f"modelzoo: error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {' and '.join(str(path) for path in result.paths)}")
    if result.check is not None:
        print(result.check.summary())
    if args.check_accuracy:
        comparison = check_accuracy(model, result.path, test_set, args.data_root, format=args.format,
                                    precision=args.precision, device=args.device, split=split,
                                    batch_size=args.batch_size, num_workers=args.workers,
                                    progress=not args.no_progress)
        print(comparison.table())
    return 0


def _check_format(args: argparse.Namespace) -> None:
    """A format, device or precision that cannot work here, or options that do not go together: before any work."""
    from modelzoo.errors import DeviceError, PrecisionError
    from modelzoo.export import check_format

    if args.check_accuracy and args.data_root is None:
        raise UsageError("--check-accuracy evaluates on a dataset: give its folder with --data-root DIR")
    if not args.check_accuracy and (args.data_root or args.eval_dataset or args.split):
        raise UsageError("--data-root, --eval-dataset and --split go with --check-accuracy: add it, or leave them out")
    if args.check_accuracy and not args.data_root.is_dir():
        raise UsageError(f"--data-root {args.data_root} is not a folder; give the dataset's data folder")
    try:
        check_format(args.format, args.device, args.precision)
    except (DeviceError, PrecisionError, ValueError) as exc:
        raise UsageError(as_options(str(exc), backends=FORMAT_OF_BACKEND)) from None


def _test_set(args: argparse.Namespace, checkpoint) -> tuple[str, str | None]:
    """The test set of ``--check-accuracy``: ``--eval-dataset``, else the checkpoint's first published one."""
    if not args.check_accuracy:
        return "", None
    if args.eval_dataset is not None:
        return args.eval_dataset, args.split
    if not checkpoint.results:
        raise UsageError(f"{checkpoint.name} has no published test set: name one with --eval-dataset")
    first = checkpoint.results[0]
    return first.dataset, args.split or first.split


def _output(args: argparse.Namespace, name: str) -> Path:
    from modelzoo.export import FORMATS as SUFFIXES

    suffix = SUFFIXES[args.format]
    output = args.output or Path(f"{name}{suffix}")
    check_output_file(output, "-o/--output")
    if args.format == "openvino" and output.suffix != ".xml":
        raise UsageError(f"-o/--output: an OpenVINO IR is an .xml file with its .bin beside it; give "
                         f"{output.with_suffix('.xml')}")
    return output
