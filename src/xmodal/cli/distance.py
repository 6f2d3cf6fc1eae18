"""`xmodal distance A B`: the optimal transport dataset distance between two datasets."""

from __future__ import annotations

import argparse
import json


def build_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "distance",
        help="OTDD between two labeled datasets (built-in tasks or .npz files)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("source", help="first dataset: built-in task name or .npz")
    parser.add_argument("target", help="second dataset: built-in task name or .npz")
    parser.add_argument("--body", help="embed both with this body (else flattened raw inputs)")
    parser.add_argument("--max-points", type=int, default=2000, help="points per dataset")
    parser.add_argument("--reg", type=float, default=0.1, help="entropic regularisation")
    parser.add_argument(
        "--inner",
        default="exact",
        choices=["exact", "gaussian"],
        help="label distances: entropic OT, or the Gaussian approximation",
    )
    parser.add_argument("--scale", type=float, default=1.0, help="size of built-in tasks")
    parser.add_argument("--seed", type=int, default=0, help="subsampling and k-means seed")
    parser.set_defaults(run=run, quiet=True, verbose=False)


def run(args: argparse.Namespace) -> int:
    from xmodal.align import otdd
    from xmodal.align.datasets import dataset_points, load_dataset

    points = [
        dataset_points(load_dataset(name, args.scale), args.max_points, args.body, seed=args.seed)
        for name in (args.source, args.target)
    ]
    (xs, ys), (xt, yt) = points
    if xs.shape[1] != xt.shape[1]:
        raise ValueError(
            f"the datasets' raw features differ in size ({xs.shape[1]} vs {xt.shape[1]}); "
            "pass --body NAME to embed both into one space"
        )
    value = otdd(xs, ys, xt, yt, reg=args.reg, inner=args.inner)
    print(json.dumps({"otdd": float(value), "method": f"otdd-{args.inner}", "reg": args.reg,
                      "n_source": len(xs), "n_target": len(xt)}))  # fmt: skip
    return 0
