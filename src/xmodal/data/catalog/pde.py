"""Darcy flow tasks: map a random permeability field to the pressure it induces.

For each example we solve -div(a grad u) = 1 on the unit square with u = 0 on the boundary,
where the coefficient a is a thresholded Gaussian random field taking values 12 and 3 (the
setting of Li et al. 2021, "Fourier Neural Operator for Parametric PDEs", on a coarse grid).
The PDE is discretised by five-point finite differences with harmonic-mean face coefficients
and solved with a sparse direct solver.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import spsolve

from xmodal.data.catalog.common import cached_splits, scaled, zscore_channels
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

GRID = 32  # nodes per side, boundary included
HIGH, LOW = 12.0, 3.0  # coefficient values where the random field is >= 0 and < 0
TAU, ALPHA = 3.0, 2.0  # the field's covariance is (-Laplacian + TAU^2)^(-ALPHA)


def gaussian_random_field(rng: np.random.Generator, size: int) -> np.ndarray:
    """A periodic Gaussian random field on a (size, size) grid, sampled spectrally."""
    k = np.fft.fftfreq(size, d=1.0 / size)  # integer wave numbers
    k2 = k[:, None] ** 2 + k[None, :] ** 2  # (size, size)
    amplitude = (4 * np.pi**2 * k2 + TAU**2) ** (-ALPHA / 2)
    noise = rng.standard_normal((size, size)) + 1j * rng.standard_normal((size, size))
    return np.fft.ifft2(amplitude * noise).real * size  # (size, size)


def coefficient(rng: np.random.Generator, size: int = GRID) -> np.ndarray:
    """Piecewise-constant permeability: HIGH where a random field is >= 0, else LOW."""
    return np.where(gaussian_random_field(rng, size) >= 0, HIGH, LOW)  # (size, size)


def solve_darcy(a: np.ndarray) -> np.ndarray:
    """Solve -div(a grad u) = 1 with u = 0 on the boundary of the unit square.

    `a` is (n, n) on the nodes of a uniform grid with spacing h = 1 / (n - 1); the
    returned u is (n, n) with zero boundary rows and columns.
    """
    n = a.shape[0]
    h = 1.0 / (n - 1)
    m = n - 2  # interior nodes per side
    index = np.arange(m * m).reshape(m, m)
    inner = a[1:-1, 1:-1]  # (m, m)
    rows, cols, vals = [], [], []
    diagonal = np.zeros((m, m))
    for di, dj in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        neighbour = a[1 + di : n - 1 + di, 1 + dj : n - 1 + dj]  # (m, m)
        face = 2 * inner * neighbour / (inner + neighbour) / h**2  # harmonic mean
        diagonal += face
        ii, jj = np.meshgrid(np.arange(m), np.arange(m), indexing="ij")
        ni, nj = ii + di, jj + dj
        inside = (ni >= 0) & (ni < m) & (nj >= 0) & (nj < m)  # boundary neighbours are 0
        rows.append(index[inside])
        cols.append(index[ni[inside], nj[inside]])
        vals.append(-face[inside])
    rows.append(index.ravel())
    cols.append(index.ravel())
    vals.append(diagonal.ravel())
    matrix = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m * m,) * 2
    )
    u = np.zeros((n, n))
    u[1:-1, 1:-1] = spsolve(matrix, np.ones(m * m)).reshape(m, m)
    return u


def generate_darcy(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` coefficient/solution pairs, each (n, 1, GRID, GRID) float32."""
    rng = np.random.default_rng(seed)
    a = np.stack([coefficient(rng) for _ in range(n)])  # (n, GRID, GRID)
    u = np.stack([solve_darcy(field) for field in a])
    return a[:, None].astype(np.float32), u[:, None].astype(np.float32)


def build_darcy(n_train: int, n_test: int, seed: int) -> Splits:
    a, u = generate_darcy(n_train + n_test, seed)
    raw = Splits(x_train=a[:n_train], y_train=u[:n_train], x_test=a[n_train:], y_test=u[n_train:])
    return zscore_channels(raw)


def load_darcy(scale: float, seed: int) -> Splits:
    """Darcy flow, 1000 train / 200 test pairs at scale 1 (about 5 s to generate, cached)."""
    n_train, n_test = scaled(1000, scale, minimum=4), scaled(200, scale, minimum=4)
    logger.debug("darcy: %d train / %d test on a %dx%d grid", n_train, n_test, GRID, GRID)
    build = functools.partial(build_darcy, n_train, n_test, seed)
    return cached_splits("darcy", 1, {"n": [n_train, n_test], "seed": seed, "grid": GRID}, build)


def load_darcy_mean(scale: float, seed: int) -> Splits:
    """The same fields as `darcy`, with the spatial mean of u as a scalar target."""
    dense = load_darcy(scale, seed)
    return Splits(
        x_train=dense.x_train,
        y_train=dense.y_train.mean(axis=(1, 2, 3)),  # (N,)
        x_test=dense.x_test,
        y_test=dense.y_test.mean(axis=(1, 2, 3)),
    )


register_task(
    TaskDef(
        name="darcy",
        description="Darcy flow -div(a grad u) = 1, u = 0 on the boundary: input the"
        " thresholded-GRF permeability a (values 12/3, z-scored), target the pressure u;"
        " (N, 1, 32, 32) both, finite differences, 1000 train / 200 test.",
        family="pde",
        dims=2,
        task_type="dense-regression",
        metric="rel-l2",
        loader=load_darcy,
        source="generated (scipy.sparse finite differences)",
    )
)
register_task(
    TaskDef(
        name="darcy-mean",
        description="Darcy flow as a point task: input the permeability a (N, 1, 32, 32),"
        " target the mean pressure (equal to the flow's energy, since the source is 1);"
        " same fields as `darcy`.",
        family="pde",
        dims=2,
        task_type="regression",
        metric="rel-l2",
        loader=load_darcy_mean,
        source="generated (scipy.sparse finite differences)",
    )
)
