"""The `xmodal` command: one subcommand per job, each with its own parser and runner."""

from __future__ import annotations

import argparse
import importlib
import sys

from xmodal.cli.common import fail, setup_logging

SUBCOMMAND_MODULES = ("fit", "use", "catalog", "distance", "bench")

# Errors that mean "the user asked for something that cannot be done": one line, exit 2.
USER_ERRORS = (ValueError, TypeError, FileNotFoundError, FileExistsError, KeyError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="xmodal",
        description="Cross-modal fine-tuning of pretrained transformers (align, then refine).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"xmodal.cli.{name}").build_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args.quiet, args.verbose)
    try:
        return args.run(args)
    except USER_ERRORS as exc:
        return fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    except RuntimeError as exc:
        from xmodal.bodies import BodyUnavailableError

        if isinstance(exc, BodyUnavailableError):
            return fail(str(exc))
        raise
    except KeyboardInterrupt:
        return fail("interrupted")


if __name__ == "__main__":
    sys.exit(main())
