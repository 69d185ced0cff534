"""The ``refinery`` command line. Each command is registered next to the code it runs, by the ``register``
function of one of :data:`COMMAND_MODULES`; a new command goes into the module of its area. ``main`` only
builds the parser and dispatches; a configuration or input error, or a folder another process holds, prints
one line and exits with 2; Ctrl-C or SIGTERM prints one line and exits with 130 (work done so far is kept:
rerunning the command resumes)."""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
import threading

EXIT_CONFIG = 2
EXIT_INTERRUPTED = 130
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


class Terminated(Exception):
    """SIGTERM, turned into an exception so that locks are released and temporary files left as they are."""


def _terminate(signum, frame):
    raise Terminated()


def main(argv: list[str] | None = None) -> int:
    from pipeline.locks import FolderLocked

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="refinery %(levelname)s: %(message)s")
    logging.getLogger("refinery").setLevel(logging.INFO)  # resumption and clean-up notes
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main_thread else None
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, FolderLocked) as exc:  # ConfigError: file, key, what was expected
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except (KeyboardInterrupt, Terminated):
        if main_thread:  # a second Ctrl-C must not cut the clean-up short
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        print("\ninterrupted; rerun the same command to resume", file=sys.stderr)
        from pipeline.engine.cluster import disconnect

        disconnect()
        return EXIT_INTERRUPTED
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
