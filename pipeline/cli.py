"""The ``refinery`` command line. Each command is registered next to the code it runs, by the ``register``
function of one of :data:`COMMAND_MODULES`; a new command goes into the module of its area. ``main`` only
builds the parser and dispatches; a configuration or input error prints one line and exits with 2."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

EXIT_CONFIG = 2
COMMAND_MODULES = (
    "pipeline.commands",  # run, validate
    "pipeline.report.commands",  # stats, report, sample, scaling
    "pipeline.tools.commands",  # tokenizer, tokenize, shards, quality
    "pipeline.models.commands",  # train, sft, sweep, generate, quantize
)


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command."""
    parser = argparse.ArgumentParser(prog="refinery", description="Curate web text for language models.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="refinery %(levelname)s: %(message)s")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as exc:  # ConfigError is a ValueError: file, key, what was expected
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG


if __name__ == "__main__":
    sys.exit(main())
