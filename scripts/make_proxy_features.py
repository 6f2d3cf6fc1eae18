"""Regenerate the proxy source features shipped in `src/xmodal/resources/proxy/`.

For each packaged body with a default proxy, embed that proxy's examples with the body's own
input embeddings, mean-pool them and store float16 features with int labels. Needs the body
packages and the Debian packages `wordnet-base` and `dataset-fashion-mnist`.

    python scripts/make_proxy_features.py                  # all shipped bodies
    python scripts/make_proxy_features.py --bodies minilm  # one body
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from xmodal.align.proxy import MAX_POINTS, embed_proxy, read_proxy, save_features
from xmodal.bodies import BODIES, load_body

logger = logging.getLogger("make_proxy_features")

SHIPPED = ("minilm", "dinov2-small")
OUT = Path(__file__).resolve().parents[1] / "src" / "xmodal" / "resources" / "proxy"


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", nargs="+", default=list(SHIPPED), choices=BODIES.names())
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the .npz files")
    parser.add_argument("--seed", type=int, default=0, help="seed of the example selection")
    args = parser.parse_args()

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_num_threads(2)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.bodies:
        make(name, args.out, args.seed)


if __name__ == "__main__":
    main()
