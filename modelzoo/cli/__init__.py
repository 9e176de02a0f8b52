"""The ``modelzoo`` command line (also ``python -m modelzoo``).

Each command group lives in its own module exposing ``register(subparsers)``;
a command's handler takes the parsed arguments and returns an exit code.
Exit codes: 0 ok, 1 an error, 2 a usage error.  A user error is reported as
one line on stderr, without a traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from modelzoo.cli._values import OneLineParser
from modelzoo.errors import ConfigError, ModelZooError, UsageError

COMMAND_MODULES = ("zoo", "fetch", "evaluate", "export")


def build_parser() -> OneLineParser:
    """The full argument parser, with every command group registered."""
    from importlib import import_module

    from modelzoo import __version__

    parser = OneLineParser(
        prog="modelzoo",
        description="torchreid's person re-ID model zoo: list, download, load and verify models.",
    )
    parser.add_argument("--version", action="version", version=f"reid-modelzoo {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    subparsers.required = True
    for module_name in COMMAND_MODULES:
        import_module(f"modelzoo.cli.{module_name}").register(subparsers)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # a usage error (exit 2, said in one line) or --help / --version (exit 0)
        return exc.code if isinstance(exc.code, int) else 2
    _configure_logging(args.verbose)
    try:
        return int(args.handler(args) or 0)
    except (UsageError, ConfigError) as exc:  # a value that cannot work: nothing was done
        print(f"modelzoo: error: {exc}", file=sys.stderr)
        return 2
    except ModelZooError as exc:
        print(f"modelzoo: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `modelzoo list | head`
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("modelzoo: interrupted", file=sys.stderr)
        return 130
