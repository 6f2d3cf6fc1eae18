"""Regenerate the proxy source features shipped in `src/xmodal/resources/proxy/`, and the
source-only alignment work on them shipped in `src/xmodal/resources/align/`.

For each packaged body with a default proxy, embed that proxy's examples with the body's own
input embeddings, mean-pool them and store float16 features with int labels. Then solve, for
the default settings of each OTDD objective, the problems that depend on those source
features alone (label distances between source classes, the source's self terms), as the
alignment stage would, and store their small results. Needs the body packages and the Debian
packages `wordnet-base` and `dataset-fashion-mnist` (the second step needs neither).

    python scripts/make_proxy_features.py                    # all shipped bodies
    python scripts/make_proxy_features.py --bodies minilm    # one body
    python scripts/make_proxy_features.py --source-work-only # keep the features, redo step 2
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from xmodal.align.objectives import ObjectiveConfig, build_objective, source_work_name
from xmodal.align.proxy import MAX_POINTS, embed_proxy, read_proxy, save_features, source_features
from xmodal.align.stage import SHIPPED_WORK, AlignConfig
from xmodal.bodies import BODIES, load_body

logger = logging.getLogger("make_proxy_features")

SHIPPED = ("minilm", "dinov2-small")
OUT = Path(__file__).resolve().parents[1] / "src" / "xmodal" / "resources" / "proxy"
# Objectives whose default settings get stored source work (the default one first).
OBJECTIVES_WITH_SOURCE_WORK = ("otdd-classwise", "otdd", "otdd-orca")


def make(body_name: str, out: Path, seed: int) -> Path:
    """Embed the default proxy of `body_name` and write `<body>-<proxy>.npz` under `out`."""
    proxy = BODIES.get(body_name).proxy
    if proxy is None:
        raise ValueError(f"body {body_name!r} has no default proxy to ship features for")
    body = load_body(body_name)
    data = read_proxy(body, proxy, seed)
    if len(data.y) > MAX_POINTS:
        raise ValueError(f"{proxy} gives {len(data.y)} examples; ship at most {MAX_POINTS}")

    start = time.perf_counter()
    features = embed_proxy(body, data)  # (n, D)
    path = out / f"{body_name}-{proxy}.npz"
    save_features(path, features, data.y, data.classes, dtype=np.float16)
    logger.info(
        "%s: %s features in %.0f s -> %s (%.2f MB)",
        body_name, features.shape, time.perf_counter() - start, path, path.stat().st_size / 1e6,
    )  # fmt: skip
    return path


def make_source_work(body_name: str, out: Path) -> list[Path]:
    """Store the source-only work of the default OTDD objectives on `body_name`'s features.

    The features are read exactly as the alignment stage reads them (shipped file, default
    number of points), so the stored files' names match what the stage looks for.
    """
    body = load_body(body_name)
    source_x, source_y = source_features(body, "default", AlignConfig().source_points)
    written = []
    for name in OBJECTIVES_WITH_SOURCE_WORK:
        config = ObjectiveConfig(name=name)
        path = out / source_work_name(config, source_x.float(), source_y.long())
        path.unlink(missing_ok=True)  # computed again, not read back
        start = time.perf_counter()
        build_objective(config, source_x.float(), source_y.long(), out)
        seconds = time.perf_counter() - start
        logger.info("%s %s: source work in %.1f s -> %s", body_name, name, seconds, path.name)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", nargs="+", default=list(SHIPPED), choices=BODIES.names())
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the .npz files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example selection")
    parser.add_argument("--source-work-out", type=Path, default=SHIPPED_WORK,
                        help="folder for the source-work .safetensors files")  # fmt: skip
    parser.add_argument("--source-work-only", action="store_true",
                        help="keep the shipped features; only redo the source work")  # fmt: skip
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in args.bodies:
        if not args.source_work_only:
            make(name, args.out, args.seed)
        written += make_source_work(name, args.source_work_out)
    if set(args.bodies) == set(SHIPPED):  # every shipped body redone: drop what none uses
        for stale in set(args.source_work_out.glob("*.safetensors")) - set(written):
            logger.info("removing stale %s", stale.name)
            stale.unlink()


if __name__ == "__main__":
    main()
