"""`xmodal predict` and `xmodal evaluate`: use a saved run folder on new data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from xmodal.cli.common import add_output_flags


def build_parser(sub: argparse._SubParsersAction) -> None:
    predict = sub.add_parser("predict", help="write a saved run's outputs on new inputs")
    predict.add_argument("run_dir", type=Path, help="run folder written by xmodal fit")
    predict.add_argument("data", help="built-in task (its test split) or .npz (x_test or x)")
    predict.add_argument("--out", type=Path, required=True, help="where to write outputs (.npy)")
    add_output_flags(predict)
    predict.set_defaults(run=run_predict)

    evaluate = sub.add_parser("evaluate", help="score a saved run on labeled data")
    evaluate.add_argument("run_dir", type=Path, help="run folder written by xmodal fit")
    evaluate.add_argument("data", help="built-in task (its test split) or .npz with targets")
    add_output_flags(evaluate)
    evaluate.set_defaults(run=run_evaluate)


def run_predict(args: argparse.Namespace) -> int:
    from xmodal.api import predict_run

    outputs = predict_run(args.run_dir, args.data)
    if args.out.suffix != ".npy":
        raise ValueError(f"--out must end in .npy, got {str(args.out)!r}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, outputs)
    print(json.dumps({"predictions": str(args.out), "shape": list(outputs.shape)}))
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    from xmodal.api import evaluate_run

    print(json.dumps(evaluate_run(args.run_dir, args.data)))
    return 0
