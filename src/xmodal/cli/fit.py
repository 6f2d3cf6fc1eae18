"""`xmodal fit`: build, (align,) fine-tune and evaluate a model, writing a run folder."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from xmodal.cli.common import add_config_flags, add_output_flags, overrides


def build_parser(sub: argparse._SubParsersAction) -> None:
    from xmodal.api import RunConfig
    from xmodal.model.network import ModelConfig
    from xmodal.train.loop import TrainConfig

    parser = sub.add_parser("fit", help="fine-tune a pretrained body on a task")
    parser.add_argument("data", help="built-in task name (xmodal tasks) or .npz file")
    parser.add_argument("--out", type=Path, help="run folder to write (must not exist)")
    parser.add_argument("--config", type=Path, help="YAML run config; flags override it")
    add_output_flags(parser)
    add_config_flags(parser, RunConfig, "", skip=("data",))
    add_config_flags(parser, ModelConfig, "model")
    add_config_flags(parser, TrainConfig, "train")
    _add_extra_sections(parser)
    parser.set_defaults(run=run)


def _add_extra_sections(parser: argparse.ArgumentParser) -> None:
    """Flags of optional stages (alignment) that extend RunConfig."""
    from xmodal.api import RunConfig

    for section, cls in RunConfig.sections().items():
        if section not in ("model", "train"):
            add_config_flags(parser, cls, section)


def resolve_config(args: argparse.Namespace):
    """RunConfig from --config, then the flags given on the command line."""
    from xmodal.api import RunConfig

    base = RunConfig.from_yaml(args.config) if args.config else RunConfig()
    merged = base.to_dict()
    merged.update(overrides(args, RunConfig, ""))
    merged["data"] = args.data
    for section, cls in RunConfig.sections().items():
        merged[section] = {**merged[section], **overrides(args, cls, section)}
    return RunConfig.from_dict(merged)


def run(args: argparse.Namespace) -> int:
    from xmodal.api import fit

    config = resolve_config(args)
    result = fit(config, out=args.out, progress=not args.quiet)
    summary = {k: result.metrics[k] for k in ("metric", "direction", "val", "test",
                                              "test_last_epoch", "best_epoch")}  # fmt: skip
    summary["method"] = config.train.method
    summary["body"] = config.model.body
    if args.out is not None:
        summary["run"] = str(args.out)
    print(json.dumps(summary), file=sys.stdout)
    return 0
