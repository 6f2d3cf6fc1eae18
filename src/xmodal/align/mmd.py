"""Kernel and distance discrepancies between point sets: cheaper alternatives to OTDD.

Both ignore labels. The maximum mean discrepancy compares mean embeddings under a sum of
Gaussian kernels; the energy distance compares mean pairwise Euclidean distances. Each splits
into a cross term and two self terms, so a fixed source's self term can be computed once.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from xmodal.align.otdd import squared_distances

# Rows of the first set per block when a mean over all pairs is taken without gradients.
BLOCK_ROWS = 1024


def mean_squared_distance(x: Tensor) -> Tensor:
    """() mean squared Euclidean distance between distinct points of x (n, d), n >= 2."""
    n = len(x)
    centred = x - x.mean(0)
    return 2 * n * centred.pow(2).sum() / (n * (n - 1))


def gaussian_kernel_mean(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    r"""() mean over all pairs of :math:`k(x, y) = \sum_s \exp(-\|x - y\|^2 / s)`.

    Args:
        x: (n, d) points.
        y: (m, d) points.
        bandwidths: the kernel widths s, in squared feature units.
    """
    dist = squared_distances(x, y)  # (n, m)
    return sum(torch.exp(dist / -width).mean() for width in bandwidths)


def mean_distance(x: Tensor, y: Tensor) -> Tensor:
    """() mean Euclidean distance over all pairs of rows of x (n, d) and y (m, d).

    Zero distances (a point with itself) pass no gradient instead of an infinite one.
    """
    dist = squared_distances(x, y)  # (n, m)
    positive = dist > 0
    return torch.where(positive, dist.clamp(min=1e-30).sqrt(), 0.0).mean()


def blockwise_mean(term, x: Tensor, y: Tensor) -> Tensor:
    """() `term(x, y)` (a mean over pairs) computed on blocks of rows of x, without gradients."""
    with torch.no_grad():
        blocks = torch.split(x, BLOCK_ROWS)
        return sum(term(block, y) * len(block) for block in blocks) / len(x)


def mmd(x: Tensor, y: Tensor, bandwidths: Sequence[float]) -> Tensor:
    r"""Squared maximum mean discrepancy with a sum of Gaussian kernels.

    .. math::
        \mathrm{MMD}^2(x, y) = \overline{k(x, x')} + \overline{k(y, y')} - 2\, \overline{k(x, y)}

    where bars are means over all pairs, a point with itself included (the biased estimate,
    exactly zero for equal sets).

    Args:
        x: (n, d) points.
        y: (m, d) points.
        bandwidths: the Gaussian kernel widths s of :math:`\exp(-\|x - y\|^2 / s)`.

    Returns:
        () the discrepancy, differentiable with respect to both sets.

    Reference:
        A. Gretton et al. A kernel two-sample test. JMLR 2012.

    Example:
        >>> mmd(torch.randn(50, 4), torch.randn(60, 4) + 1, bandwidths=(1.0, 4.0))
    """
    cross = gaussian_kernel_mean(x, y, bandwidths)
    return (
        gaussian_kernel_mean(x, x, bandwidths) + gaussian_kernel_mean(y, y, bandwidths) - 2 * cross
    )


def energy_distance(x: Tensor, y: Tensor) -> Tensor:
    r"""Energy distance: mean pairwise L2 distance across sets, minus that within each set.

    .. math::
        E(x, y) = 2\, \overline{\|x - y\|} - \overline{\|x - x'\|} - \overline{\|y - y'\|}

    with means over all pairs. It is zero when the sets are equal and positive between
    different distributions.

    Args:
        x: (n, d) points.
        y: (m, d) points.

    Returns:
        () the distance, differentiable with respect to both sets.

    Reference:
        G. J. Szekely and M. L. Rizzo. Energy statistics: a class of statistics based on
        distances. Journal of Statistical Planning and Inference, 2013.

    Example:
        >>> energy_distance(torch.randn(50, 4), torch.randn(60, 4) + 1)
    """
    return 2 * mean_distance(x, y) - mean_distance(x, x) - mean_distance(y, y)
