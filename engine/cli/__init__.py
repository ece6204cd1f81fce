"""The ``i2i`` command line: weights, generate, train, data, eval, bench, doctor.

The engine's top layer beside :mod:`engine.api`: one module per command group (``generate``,
``weights``, ``data``, ``evaluate``, ``train``, ``tools``), each adding its sub-commands with
``register(groups)``; the tasks, trainers and metrics below it hold the computation only.
"""
from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from ..progress import end_line
from ..requests.base import EngineError
from . import data, evaluate, generate, tools, train, weights
from .common import (
    CliError,
    CliGroups,
    FolderMode,
    OneLineParser,
    check_output_files,
    error_message,
    folder_input,
    reset_session,
    run_over_folder,
)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="i2i", description="i2i-studio engine command line")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    top = parser.add_subparsers(dest="command", required=True)
    weights.add_commands(top)  # first in the help
    generate_group = top.add_parser("generate", help="run a synthesis task and write images").add_subparsers(
        dest="task", required=True)
    train_group = top.add_parser("train", help="train a generator family").add_subparsers(dest="family", required=True)
    data_group = top.add_parser("data", help="build and inspect training data").add_subparsers(
        dest="data_cmd", required=True)
    groups = CliGroups(generate=generate_group, train=train_group, data=data_group, top=top)
    tools.register(groups)
    generate.register(groups)
    train.register(groups)
    data.register(groups)
    evaluate.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    reset_session()  # each command loads its models afresh
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        mode: FolderMode | None = getattr(args, "folder_mode", None)
        source = folder_input(args, mode) if mode is not None else None
        if source is not None:
            return run_over_folder(args, mode, source)
        if mode is not None:
            check_output_files(args, mode)
        return int(args.func(args) or 0)
    except (CliError, EngineError, KeyError, OSError, ValueError) as exc:
        if debug:
            raise
        end_line(sys.stderr)  # never glue the message to a progress line
        print(f"i2i: error: {error_message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        end_line(sys.stderr)
        print("i2i: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stdout = open(os.devnull, "w")  # silences the interpreter's flush at exit
        return 0


__all__ = ["main", "build_parser", "CliError", "FolderMode"]
