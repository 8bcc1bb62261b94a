"""The ``capx`` command: one subcommand per module, imported only when that subcommand runs.

A subcommand is a module with ``add_arguments(parser)`` and ``main(args) -> int | None``; adding
one is one line in :data:`SUBCOMMANDS`. Modules are imported lazily so ``capx --help`` stays fast
(no NumPy, h5py or MLflow import just to print the list).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from capx import __version__

# subcommand name -> (module that implements it, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "train": ("capx.run.train_command", "train and track a run, or a sweep with -m (what python run.py does)"),
    "caption": ("capx.images.caption_command", "caption image files with a trained run or checkpoint"),
    "download": ("capx.datasets.download", "fetch a dataset (the CS231n COCO captions) into the data folder"),
    "export": ("capx.study.export", "write a study's finished runs to a JSON-lines file for git"),
    "features": ("capx.images.features_command", "image features of image files or folders into an h5 file"),
    "report": ("capx.study.report", "compare a study's runs (tokenizer x cell): tables and plots"),
}
#: subcommands whose arguments go to them untouched
RAW_ARGUMENTS = ("train",)


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser: options, then a subcommand name; the rest goes to the subcommand."""
    listing = "\n".join(f"  {name:<12} {help_}" for name, (_, help_) in SUBCOMMANDS.items())
    parser = argparse.ArgumentParser(
        prog="capx",
        description="Char vs word image captioning experiments.",
        epilog=f"commands:\n{listing}\n\nRun `capx COMMAND --help` for a command's options.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"capx {__version__}")
    parser.add_argument(
        "command", choices=sorted(SUBCOMMANDS), metavar="COMMAND", help="one of the commands below"
    )
    return parser


def build_subparser(name: str) -> tuple[argparse.ArgumentParser, object]:
    """Import the module behind subcommand ``name``; return its parser and the module."""
    module_name, help_ = SUBCOMMANDS[name]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"capx {name}", description=help_)
    module.add_arguments(parser)
    return parser, module


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``capx`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    head, tail = argv[: split + 1], argv[split + 1 :]
    args = build_parser().parse_args(head)
    if args.command in RAW_ARGUMENTS:  # Hydra parses these itself (-m, --cfg job, overrides)
        return int(importlib.import_module(SUBCOMMANDS[args.command][0]).main(tail) or 0)
    parser, module = build_subparser(args.command)
    status = module.main(parser.parse_args(tail))
    return int(status or 0)


if __name__ == "__main__":
    sys.exit(main())
