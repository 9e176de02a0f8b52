"""Checks of command-line values, done before any work: each failure is one line and exit code 2.

argparse ``type=`` functions refuse a malformed value while parsing; the
``check_*`` functions refuse values that parse but cannot work on this
machine (an output folder that does not exist, fp16 without CUDA), before a
single checkpoint is downloaded or image decoded.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from modelzoo.errors import UsageError


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line (``modelzoo eval: error: ...``) and exit code 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def positive_int(text: str) -> int:
    """A whole number of at least 1 (``--batch-size``)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    """A whole number of at least 0 (``--workers``: 0 decodes in the main process)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be 0 or more")
    return value


def points(text: str) -> float:
    """A finite number of percentage points, 0 or more (``--tolerance``)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a finite number of points, 0 or more")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def check_precision(device: str | None, backend: str, precision: str) -> None:
    """A backend or precision that cannot run on the device: say so before anything is loaded."""
    import torch

    from modelzoo.errors import PrecisionError
    from modelzoo.inference.precision import check_precision as check

    on_cuda = device.startswith("cuda") if device else torch.cuda.is_available()
    try:
        check(backend, torch.device("cuda" if on_cuda else "cpu"), precision)
    except (PrecisionError, ValueError) as exc:
        raise UsageError(as_options(str(exc))) from None


def as_options(message: str, backends: Mapping[str, str] | None = None) -> str:
    """A library message in the command's words, on one line: ``precision='bf16'`` -> ``--precision bf16``.

    Args:
        message: the library's message.
        backends: how this command names a ``backend='name'`` (default ``--backend name``).
    """
    message = re.sub(r"\bformat '(\w+)'", r"--format \1", message)
    message = re.sub(r"\bprecision[= ]'(\w+)'", r"--precision \1", message)
    message = re.sub(r"\bdevice[= ]'([\w:]+)'", r"--device \1", message)
    message = re.sub(r"\bbackend[= ]'(\w+)'",
                     lambda m: (backends or {}).get(m.group(1), f"--backend {m.group(1)}"), message)
    return " ".join(message.split())


def check_output_folder(folder: Path, what: str) -> None:
    """``folder`` exists or can be created, is a folder, and can be written to."""
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{what} {folder} is a file, not a folder: give a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".modelzoo-write-check-"):
            pass
    except OSError as exc:
        raise UsageError(f"{what} {folder} cannot be written to ({exc.strerror or exc}); give a writable folder") \
            from None


def check_output_file(path: Path, what: str) -> None:
    """``path`` can be written: its folder exists and is writable, and it is not a folder itself."""
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder: give a file name, e.g. {path / 'model.onnx'}")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{what}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{what}: the folder {folder} is not writable")
