"""Image tasks: sklearn's 8x8 digits, Fashion-MNIST from the Debian package, and digits
projected onto randomly rotated spheres.

Pixel values are scaled to [0, 1]. Digits and spherical use a seeded split of sklearn's 1797
images; Fashion-MNIST subsamples its official train and test sets.
"""

from __future__ import annotations

import functools
import gzip
import logging
import os
from pathlib import Path

import numpy as np

from xmodal.data.catalog.common import cached_splits, scaled, seeded_split, subsample
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
DIGITS_TRAIN, DIGITS_TEST = 1297, 500  # all 1797 sklearn digits


def _digit_counts(scale: float) -> tuple[int, int]:
    """Train/test sizes for `scale`, capped to the 1797 digits available."""
    shrink = min(scale, 1.0)
    if scale > 1:
        logger.info("digits has 1797 images; scale %s keeps all of them", scale)
    return scaled(DIGITS_TRAIN, shrink, minimum=10), scaled(DIGITS_TEST, shrink, minimum=10)


def digit_images() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's digits as (1797, 1, 8, 8) float32 in [0, 1] and (1797,) int64 labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.images / 16.0).astype(np.float32)[:, None]  # (N, 1, 8, 8)
    return x, bunch.target.astype(np.int64)


def load_digits_task(scale: float, seed: int) -> Splits:
    """Seeded split of sklearn's digits (1297 train / 500 test at scale 1)."""
    x, y = digit_images()
    n_train, n_test = _digit_counts(scale)
    return seeded_split(x, y, n_train, n_test, seed)


# --- Fashion-MNIST -----------------------------------------------------------------------


def fashion_mnist_dir() -> Path:
    """Where the idx files live: `$XMODAL_FASHION_MNIST` or the Debian package's folder."""
    return Path(os.environ.get("XMODAL_FASHION_MNIST", FASHION_MNIST_DIR))


def read_idx(path: Path) -> np.ndarray:
    """Read a (gzipped) idx file of unsigned bytes, as MNIST-style datasets ship them."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist_arrays() -> dict[str, np.ndarray]:
    """The four official Fashion-MNIST arrays; images (N, 28, 28) uint8, labels (N,)."""
    root = fashion_mnist_dir()
    missing = [name for name in FASHION_MNIST_FILES.values() if not (root / name).exists()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST files {missing} not found in {root}; install them with "
            "`apt-get install dataset-fashion-mnist` or set XMODAL_FASHION_MNIST to their folder"
        )
    return {key: read_idx(root / name) for key, name in FASHION_MNIST_FILES.items()}


def build_fashion_mnist(n_train: int, n_test: int, seed: int) -> Splits:
    arrays = fashion_mnist_arrays()
    x_train, y_train = subsample(arrays["x_train"], arrays["y_train"], n_train, seed)
    x_test, y_test = subsample(arrays["x_test"], arrays["y_test"], n_test, seed + 1)
    return Splits(
        x_train=(x_train[:, None] / 255.0).astype(np.float32),  # (N, 1, 28, 28)
        y_train=y_train.astype(np.int64),
        x_test=(x_test[:, None] / 255.0).astype(np.float32),
        y_test=y_test.astype(np.int64),
    )


def load_fashion_mnist(scale: float, seed: int) -> Splits:
    """Seeded subsample of Fashion-MNIST: 2000 train / 1000 test at scale 1."""
    n_train, n_test = scaled(2000, scale, minimum=10), scaled(1000, scale, minimum=10)
    build = functools.partial(build_fashion_mnist, n_train, n_test, seed)
    return cached_splits("fashion-mnist", 1, {"n": [n_train, n_test], "seed": seed}, build)


# --- Spherical digits ----------------------------------------------------------------------


def sphere_grid(size: int) -> np.ndarray:
    """Unit vectors of an equiangular (colatitude, longitude) grid: (size, size, 3).

    Rows are colatitudes at cell centres in (0, pi), columns longitudes in [0, 2 pi).
    """
    theta = (np.arange(size) + 0.5) * np.pi / size  # (H,)
    phi = np.arange(size) * 2 * np.pi / size  # (W,)
    t, p = np.meshgrid(theta, phi, indexing="ij")  # (H, W)
    return np.stack([np.sin(t) * np.cos(p), np.sin(t) * np.sin(p), np.cos(t)], axis=-1)


def project_to_sphere(
    image: np.ndarray, rotation: np.ndarray, grid: np.ndarray, half_width: float = 1.0
) -> np.ndarray:
    """Sample a planar image placed on a rotated sphere at the points of `grid`.

    The image sits on the plane tangent to the north pole, spanning [-half_width, half_width]
    in both axes, and is mapped to the northern hemisphere by gnomonic projection; the
    sphere is then rotated by `rotation` (3, 3). Points off the image read 0.
    """
    from scipy.ndimage import map_coordinates

    points = grid.reshape(-1, 3) @ rotation  # (H*W, 3): rotate the grid back, R^T v
    z = points[:, 2]
    front = z > 1e-6
    safe_z = np.where(front, z, 1.0)
    u, v = points[:, 0] / safe_z, points[:, 1] / safe_z  # plane coordinates
    n_rows, n_cols = image.shape
    rows = (v / half_width + 1) / 2 * n_rows - 0.5  # pixel centres at half-integers
    cols = (u / half_width + 1) / 2 * n_cols - 0.5
    rows, cols = np.where(front, rows, -10.0), np.where(front, cols, -10.0)
    values = map_coordinates(image, [rows, cols], order=1, mode="constant", cval=0.0)
    return values.reshape(grid.shape[:2])  # (H, W)


def build_spherical(n_train: int, n_test: int, seed: int, size: int = 32) -> Splits:
    from scipy.spatial.transform import Rotation

    x, y = digit_images()
    splits = seeded_split(x, y, n_train, n_test, seed)
    grid = sphere_grid(size)
    out = {}
    for part, rot_seed in (("train", seed), ("test", seed + 10_000)):
        images = getattr(splits, f"x_{part}")[:, 0]  # (N, 8, 8)
        rotations = Rotation.random(len(images), random_state=rot_seed).as_matrix()  # (N, 3, 3)
        sphere = [project_to_sphere(img, rot, grid) for img, rot in zip(images, rotations)]
        out[f"x_{part}"] = np.stack(sphere)[:, None].astype(np.float32)  # (N, 1, H, W)
        out[f"y_{part}"] = getattr(splits, f"y_{part}")
    return Splits(**out)


def load_spherical(scale: float, seed: int) -> Splits:
    """Digits on randomly rotated spheres, 32x32 equiangular grid (1297 / 500 at scale 1)."""
    n_train, n_test = _digit_counts(scale)
    build = functools.partial(build_spherical, n_train, n_test, seed)
    return cached_splits("spherical", 1, {"n": [n_train, n_test], "seed": seed}, build)


register_task(
    TaskDef(
        name="digits",
        description="sklearn's handwritten digits, (N, 1, 8, 8) in [0, 1], 10 classes; seeded"
        " split of the 1797 images into 1297 train / 500 test.",
        family="image",
        dims=2,
        task_type="classification",
        metric="error",
        loader=load_digits_task,
        source="sklearn.datasets.load_digits",
    )
)
register_task(
    TaskDef(
        name="fashion-mnist",
        description="Fashion-MNIST clothing images, (N, 1, 28, 28) in [0, 1], 10 classes;"
        " seeded subsample of the official splits, 2000 train / 1000 test.",
        family="image",
        dims=2,
        task_type="classification",
        metric="error",
        loader=load_fashion_mnist,
        source="Debian package dataset-fashion-mnist (/usr/share/datasets/fashion-mnist)",
    )
)
register_task(
    TaskDef(
        name="spherical",
        description="Digits projected onto the sphere (gnomonic, northern hemisphere) under a"
        " random rotation per image, resampled on a 32x32 equiangular lat/lon grid:"
        " (N, 1, 32, 32), 10 classes, 1297 train / 500 test.",
        family="image",
        dims=2,
        task_type="classification",
        metric="error",
        loader=load_spherical,
        source="generated from sklearn digits (after NAS-Bench-360 Spherical)",
    )
)
