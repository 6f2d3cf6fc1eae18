"""Shared pieces of the command line: logging set-up, config flags, error reporting.

Config dataclasses become flags automatically: every simple field `foo_bar` of a section
becomes `--foo-bar`, with the field's own docstring as help, so a setting is documented
once and the CLI never falls behind the configs.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
import types
import typing
from typing import Any

from xmodal.config import Config, field_docs

SIMPLE_TYPES = (int, float, str, bool)


def setup_logging(quiet: bool, verbose: bool) -> None:
    """Log xmodal's messages to stderr: warnings only with --quiet, debug with --verbose."""
    level = logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("xmodal")
    root.handlers[:] = [handler]
    root.setLevel(level)
    root.propagate = False
    for noisy in ("transformers", "huggingface_hub", "sktime"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars on every body load


def add_output_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("-q", "--quiet", action="store_true", help="only warnings and results")
    group.add_argument("-v", "--verbose", action="store_true", help="debug messages")


def _simple_type(hint: Any) -> type | None:
    """int, float, str or bool, also inside Optional; None for anything else (lists...)."""
    is_union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = [t for t in (typing.get_args(hint) if is_union else (hint,)) if t is not type(None)]
    return options[0] if len(options) == 1 and options[0] in SIMPLE_TYPES else None


def add_config_flags(
    parser: argparse.ArgumentParser,
    cls: type[Config],
    section: str,
    skip: tuple[str, ...] = (),
    prefix: str = "",
    rename: dict[str, str] | None = None,
) -> None:
    """Add a `--{prefix}field-name` flag for every simple field of `cls`.

    Flags default to None, meaning "keep the config's value"; `section` is the dotted path
    of `cls` inside RunConfig ("" for RunConfig itself) and becomes the flags' dest prefix.
    """
    group = parser.add_argument_group(f"{section} settings" if section else "run settings")
    docs, hints = field_docs(cls), typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = _simple_type(hints[field.name])
        if kind is None or field.name in skip:
            continue
        name = (rename or {}).get(field.name, prefix + field.name.replace("_", "-"))
        dest = f"{section}.{field.name}" if section else field.name
        default = field.default if field.default is not dataclasses.MISSING else None
        help_text = f"{docs.get(field.name, '')} (default: {default})"
        if kind is bool:
            group.add_argument(f"--{name}", dest=dest, action=argparse.BooleanOptionalAction,
                               default=None, help=help_text)  # fmt: skip
        else:
            group.add_argument(f"--{name}", dest=dest, type=kind, default=None, help=help_text,
                               metavar=kind.__name__.upper())  # fmt: skip


def overrides(args: argparse.Namespace, cls: type[Config], section: str) -> dict[str, Any]:
    """The flags for fields of `cls` that the user actually gave, as {field: value}."""
    values = vars(args)
    out = {}
    for field in dataclasses.fields(cls):
        value = values.get(f"{section}.{field.name}" if section else field.name)
        if value is not None:
            out[field.name] = value
    return out


def fail(message: str) -> int:
    """Print a one-line error and return exit status 2."""
    print(f"xmodal: error: {message}", file=sys.stderr)
    return 2
