"""Optimal transport dataset distance (OTDD) between two labeled point sets.

OTDD (Alvarez-Melis and Fusi 2020) is optimal transport between labeled points whose ground
cost adds, to the squared distance between features, a distance between the two labels: the
squared 2-Wasserstein distance between the points of one class and those of the other. This
module groups points by class, computes those label distances (by inner OT problems, or in
closed form between Gaussian fits) and solves the outer problem. Everything that depends on
the source set alone is computed once, in a `SourceCache`. Per-class distances are solved a few
target classes at a time, with their gradient, so that memory stays near one class's
(points x source points) matrices whatever the number of classes.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Hashable, Sequence

import torch
from torch import Tensor

from xmodal.align.sinkhorn import (
    SelfTransport,
    SinkhornResult,
    envelope_value,
    solve_batch,
    symmetric_sinkhorn_by_blocks,
)
from xmodal.registry import Registry

logger = logging.getLogger(__name__)

# Buffers of (target points of a group) x (source points) that the outer problem of a group
# holds at once: the distances, turned into its cost in place, and its kernel, later its plan.
# Each label distance adds its own (`work_buffers`).
OUTER_BUFFERS = 2


@dataclasses.dataclass(frozen=True)
class SinkhornOptions:
    """Settings shared by every Sinkhorn problem of a distance (see `sinkhorn.sinkhorn`)."""

    reg: float = 0.1  # entropic regularisation, in squared feature units
    max_iter: int = 100  # most iterations at the final `reg`
    tol: float = 1e-2  # target L1 error of the marginals
    scaling: float = 0.5  # ratio between successive regularisations of the annealing

    def solve(
        self,
        cost: Tensor,
        a: Tensor,
        b: Tensor,
        init: Tensor | None = None,
        symmetric: bool = False,
    ) -> SinkhornResult:
        """Batched solve: cost (B, n, m), weights (B, n) and (B, m), init (B, m) or None."""
        options = (self.reg, self.max_iter, self.tol, self.scaling)
        return solve_batch(cost, a, b, *options, init=init, symmetric=symmetric)


# --------------------------------------------------------------------------- points by class


@dataclasses.dataclass
class ClassGroups:
    """Points of a labeled set gathered into groups of a single class, padded to one size.

    Attributes:
        x: (G, n, d) features, zero on padding.
        weights: (G, n) uniform weights 1 / (points in the group), zero on padding.
        classes: (G,) class of each group, as an index into the set's sorted distinct labels.
    """

    x: Tensor
    weights: Tensor
    classes: Tensor

    @classmethod
    def gather(cls, x: Tensor, index: Tensor, classes: Tensor) -> ClassGroups:
        """Groups of rows of `x` (N, d) listed in `index` (G, n), where -1 marks padding.

        When `x` is already laid out group by group with no padding (`index` is 0..N-1 in
        order, as in the packaged bodies' source features), the groups are a view of `x`
        rather than a copy, and share its memory.
        """
        mask = (index >= 0).to(x.dtype)  # (G, n)
        weights = mask / mask.sum(-1, keepdim=True)
        if index.numel() == len(x) and torch.equal(
            index.flatten(), torch.arange(len(x), device=index.device)
        ):
            return cls(x.reshape(*index.shape, x.shape[-1]), weights, classes)  # (G, n, d)
        rows = x[index.clamp(min=0)]  # (G, n, d), a copy
        rows.mul_(mask.unsqueeze(-1))  # padding rows become zero in place: no second copy
        return cls(rows, weights, classes)

    @property
    def counts(self) -> Tensor:
        """(G,) number of points in each group."""
        return (self.weights > 0).sum(-1)

    def select(self, part: slice) -> ClassGroups:
        """The groups in `part`, a slice of the group axis."""
        return ClassGroups(self.x[part], self.weights[part], self.classes[part])

    def flat_weights(self) -> Tensor:
        """(G * n,) weights of all groups taken as one uniform measure."""
        mask = (self.weights > 0).flatten()  # (G n,)
        return mask.to(self.x.dtype) / mask.sum()


def class_index(labels: Tensor, n_classes: int, order: Tensor, limit: int | None) -> Tensor:
    """(K, n) table of point indices per class, in `order`, at most `limit` each; -1 pads.

    Args:
        labels: (N,) class of each point, in 0..n_classes-1.
        n_classes: K.
        order: (N,) a permutation of the points: each class keeps its first points in it.
        limit: most points per class, or None for all.
    """
    ranked = order[torch.argsort(labels[order], stable=True)]  # (N,) class by class, in order
    counts = torch.bincount(labels, minlength=n_classes)  # (K,)
    starts = torch.cumsum(counts, 0) - counts
    position = torch.arange(len(labels), device=labels.device) - starts[labels[ranked]]
    keep = position < (limit if limit is not None else len(labels))
    width = int(position[keep].max()) + 1
    table = torch.full((n_classes, width), -1, dtype=torch.long, device=labels.device)
    table[labels[ranked][keep], position[keep]] = ranked[keep]
    return table


def squared_distances(x: Tensor, y: Tensor, y_norms: Tensor | None = None) -> Tensor:
    """Squared Euclidean distances between rows: (n, d), (m, d) -> (n, m), or batched (B, ...).

    `y_norms`, the (..., m) squared norms of y's rows, can be passed when they are known. The
    result is the only (n, m) buffer made: norms are added to the product in place.
    """
    y_norms = y.pow(2).sum(-1) if y_norms is None else y_norms  # (..., m)
    if x.dim() == 2:
        dist = torch.addmm(y_norms.unsqueeze(-2), x, y.T, alpha=-2)  # (n, m)
    else:
        dist = torch.baddbmm(y_norms.unsqueeze(-2), x, y.transpose(-1, -2), alpha=-2)
    return dist.add_(x.pow(2).sum(-1).unsqueeze(-1)).clamp_(min=0)  # (..., n, m)


def squared_distances_gradient(x: Tensor, y: Tensor, weights: Tensor, scale: float) -> Tensor:
    r"""Gradient w.r.t. x of :math:`\sum_{ij} w_{ij}\, s \|x_i - y_j\|^2`, without forming it.

    It is :math:`2 s (\sum_j w_{ij}\, x_i - \sum_j w_{ij}\, y_j)`: one product with y. With w
    a transport plan this is the envelope gradient of an OT value w.r.t. its row points.

    Args:
        x: (..., n, d) points.
        y: (m, d) or (..., m, d) points.
        weights: (..., n, m) weights of the pairs (e.g. the gradient w.r.t. the distances).
        scale: s.
    """
    gradient = (weights @ y).neg_()  # (..., n, d), the only buffer of that size
    return gradient.addcmul_(weights.sum(-1, keepdim=True), x).mul_(2 * scale)


def group_distances(
    a: ClassGroups, b: ClassGroups, scale: float = 1.0, b_norms: Tensor | None = None
) -> Tensor:
    """(G_a, n_a, G_b, n_b) scaled squared distances between all points of two group sets.

    `b_norms` are the (G_b n_b,) squared norms of b's points, if known.
    """
    flat = squared_distances(a.x.flatten(0, 1), b.x.flatten(0, 1), b_norms)  # (G_a n_a, G_b n_b)
    dist = flat.view(*a.x.shape[:2], *b.x.shape[:2])  # (G_a, n_a, G_b, n_b)
    return dist if scale == 1.0 else dist.mul_(scale)


# --------------------------------------------------------------------------- label distances


@dataclasses.dataclass
class GroupPair:
    """Two group sets and the terms between them that label distances are built from.

    Attributes:
        a, b: the two group sets (target and source, or a set and itself).
        dist: (G_a, n_a, G_b, n_b) scaled squared distances between their points.
        scale: the factor applied to squared distances (1, or 1/2 in the ORCA convention).
        self_a: (G_a,) entropic OT of each group of `a` with itself, or None without debias.
        self_b: (G_b,) likewise for `b`.
    """

    a: ClassGroups
    b: ClassGroups
    dist: Tensor
    scale: float
    self_a: Tensor | None = None
    self_b: Tensor | None = None


LABEL_DISTANCES: Registry[type] = Registry("label distance")


@LABEL_DISTANCES.register("exact")
class ExactLabelDistance:
    r"""Label distance by entropic OT between the points of two classes.

    .. math::
        W(y, y') = \mathrm{OT}_\varepsilon(\alpha_y, \beta_{y'})
            - \tfrac12 \mathrm{OT}_\varepsilon(\alpha_y, \alpha_y)
            - \tfrac12 \mathrm{OT}_\varepsilon(\beta_{y'}, \beta_{y'})

    where :math:`\alpha_y` is the uniform measure on the points of class y (the last two terms
    only with `debias`). All class pairs are solved as one batch of Sinkhorn problems whose
    costs are blocks of the distance matrix shared with the outer problem.
    """

    # (b x n_s) buffers per target group: the inner costs (later their gradient) and plans.
    work_buffers = 2

    def __init__(self, solve: Callable[..., SinkhornResult], debias: bool) -> None:
        self.solve, self.debias = solve, debias

    def between(self, pair: GroupPair, init: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(G_a, G_b) label distances, and (G_a, G_b, n_b) potentials for a warm start."""
        if pair.a is pair.b:
            return self._within(pair), None
        ga, na, gb, nb = pair.dist.shape
        cost = pair.dist.permute(0, 2, 1, 3).reshape(ga * gb, na, nb)  # (G_a G_b, n_a, n_b)
        wa = pair.a.weights.unsqueeze(1).expand(ga, gb, na).reshape(ga * gb, na)  # (G_a G_b, n_a)
        wb = pair.b.weights.unsqueeze(0).expand(ga, gb, nb).reshape(ga * gb, nb)  # (G_a G_b, n_b)
        start = None if init is None else init.reshape(ga * gb, nb)  # (G_a G_b, n_b)
        result = self.solve(cost, wa, wb, start)

        values = result.value.view(ga, gb)  # (G_a, G_b)
        if self.debias:
            values = values - 0.5 * (pair.self_a[:, None] + pair.self_b[None, :])
        return values, result.g.view(ga, gb, nb)  # (G_a, G_b), (G_a, G_b, n_b)

    def among(
        self,
        groups: ClassGroups,
        scale: float,
        self_values: Tensor | None,
        max_bytes: int | None = None,
    ) -> Tensor:
        """(G, G) label distances among the groups of one set, each pair's cost made from the
        points when it is solved.

        Pairs are solved a chunk at a time whose buffers fit in `max_bytes` (all at once when
        None), so no (G, n, G, n) distance matrix is formed. `self_values` (G,) are the groups'
        OT with themselves, required with debias.
        """

        def costs(rows: Tensor, cols: Tensor) -> Tensor:
            return squared_distances(groups.x[rows], groups.x[cols]).mul_(scale)  # (p, n, n)

        _, n, d = groups.x.shape
        # Per pair: the two classes' gathered points, then the work buffers of its problem.
        pair_bytes = (2 * n * d + self.work_buffers * n * n) * groups.x.element_size()
        return self._from_pairs(groups, costs, self_values, max_bytes, pair_bytes)

    def _within(self, pair: GroupPair) -> Tensor:
        """(G, G) label distances among the groups of one set, from their distance matrix."""
        return self._from_pairs(pair.a, lambda rows, cols: pair.dist[rows, :, cols], pair.self_a)

    def _from_pairs(self, groups, costs, diagonal, max_bytes=None, pair_bytes=0) -> Tensor:
        """(G, G) symmetric label distances from `costs(rows, cols)`, (p, n, n) pair costs.

        The diagonal is known (zero with debias, else each group's OT with itself), so only
        the pairs i < j are solved, as many at a time as `pair_bytes` each fit in `max_bytes`.
        """
        g = len(groups.weights)
        weights = groups.weights
        rows, cols = torch.triu_indices(g, g, 1, device=weights.device)
        values = []  # only the values are kept: each chunk's plans go before the next is solved
        for part in chunk_slices(len(rows), pair_bytes, max_bytes):
            r, c = rows[part], cols[part]
            values.append(self.solve(costs(r, c), weights[r], weights[c]).value)
        upper = torch.cat(values) if values else weights.new_zeros(0)
        if diagonal is None:  # not debiased: the diagonal is each group's own OT
            index = torch.arange(g, device=weights.device)
            diagonal = self.solve(costs(index, index), weights, weights, symmetric=True).value
        if self.debias:
            upper = upper - 0.5 * (diagonal[rows] + diagonal[cols])
            diagonal = torch.zeros_like(diagonal)
        return _symmetric_matrix(upper, rows, cols, diagonal)


def _symmetric_matrix(upper: Tensor, rows: Tensor, cols: Tensor, diagonal: Tensor) -> Tensor:
    """(G, G) symmetric matrix from its entries above the diagonal and its diagonal."""
    matrix = torch.diag_embed(diagonal)
    matrix = matrix.index_put((rows, cols), upper)
    return matrix.index_put((cols, rows), upper)


@LABEL_DISTANCES.register("gaussian")
class GaussianLabelDistance:
    r"""Label distance between Gaussian fits of two classes (Bures-Wasserstein, closed form).

    .. math::
        W(y, y') = \|\mu - \nu\|^2 + \operatorname{tr}\Sigma + \operatorname{tr}\Sigma'
            - 2 \operatorname{tr}\big(\Sigma^{1/2} \Sigma' \Sigma^{1/2}\big)^{1/2}

    with the empirical means and covariances of the two classes. The last trace equals the
    nuclear norm of :math:`\bar X \bar X'^\top / \sqrt{n n'}` (centred points of the two
    classes), which is computed from the shared distance matrix on the smaller side of each
    pair, so no (d, d) matrix is formed. It is zero between a class and itself, so `debias`
    changes nothing, and no Sinkhorn problem is solved.
    """

    # (b x n_s) buffers per target group: the centred products, kept for their gradient, and
    # up to three of their size in the backward pass of the nuclear norm and the masks.
    work_buffers = 4

    def __init__(self, solve: Callable[..., SinkhornResult], debias: bool) -> None:
        self.debias = debias

    def between(self, pair: GroupPair, init: Tensor | None = None) -> tuple[Tensor, None]:
        """(G_a, G_b) label distances (and no potentials)."""
        mean_a, mean_b = _means(pair.a), _means(pair.b)  # (G_a, d), (G_b, d)
        cross = _centred_products(pair, mean_a, mean_b)  # (G_a, G_b, n_a, n_b)
        sizes = pair.a.counts[:, None] * pair.b.counts[None, :]  # (G_a, G_b)
        spread_a, spread_b = _spread(pair.a, mean_a), _spread(pair.b, mean_b)  # (G,) traces
        bures = squared_distances(mean_a, mean_b) + spread_a[:, None] + spread_b[None, :]
        if pair.a is pair.b:  # symmetric, zero diagonal: the pairs i < j are enough
            rows, cols = torch.triu_indices(len(sizes), len(sizes), 1, device=sizes.device)
            root = _nuclear_norms(cross[rows, cols]) / sizes[rows, cols].to(cross.dtype).sqrt()
            upper = (bures[rows, cols] - 2 * root).clamp(min=0)
            return pair.scale * _symmetric_matrix(upper, rows, cols, bures.diagonal() * 0), None
        root = _nuclear_norms(cross) / sizes.to(cross.dtype).sqrt()  # (G_a, G_b)
        return pair.scale * (bures - 2 * root).clamp(min=0), None

    def among(
        self,
        groups: ClassGroups,
        scale: float,
        self_values: Tensor | None,
        max_bytes: int | None = None,
    ) -> Tensor:
        """(G, G) label distances among the groups of one set, from their points.

        Pairs are taken a chunk at a time whose buffers fit in `max_bytes` (all at once when
        None), so no (G, n, G, n) matrix is formed. `self_values` are not needed.
        """
        g, n, d = groups.x.shape
        means = _means(groups)  # (G, d)
        spread = _spread(groups, means)  # (G,)
        rows, cols = torch.triu_indices(g, g, 1, device=means.device)
        pair_bytes = (2 * n * d + self.work_buffers * n * n) * groups.x.element_size()
        roots = [
            _pair_roots(groups, means, rows[part], cols[part])
            for part in chunk_slices(len(rows), pair_bytes, max_bytes)
        ]
        root = torch.cat(roots) if roots else means.new_zeros(0)  # (pairs,)
        centres = (means[rows] - means[cols]).pow(2).sum(-1)  # (pairs,)
        upper = (centres + spread[rows] + spread[cols] - 2 * root).clamp(min=0)
        return scale * _symmetric_matrix(upper, rows, cols, spread * 0)


def _pair_roots(groups: ClassGroups, means: Tensor, rows: Tensor, cols: Tensor) -> Tensor:
    """(p,) trace term tr((S^1/2 S' S^1/2)^1/2) of the group pairs (rows, cols).

    It is the nuclear norm of the centred cross products X Y^T / sqrt(n n'), (p, n, n').
    """
    mask = (groups.weights > 0).to(groups.x.dtype)  # (G, n)
    centred_rows = groups.x[rows].sub_(means[rows, None]).mul_(mask[rows, :, None])  # (p, n, d)
    centred_cols = groups.x[cols].sub_(means[cols, None]).mul_(mask[cols, :, None])  # (p, n, d)
    products = centred_rows @ centred_cols.transpose(-1, -2)  # (p, n, n)
    sizes = (groups.counts[rows] * groups.counts[cols]).to(products.dtype)  # (p,)
    return _nuclear_norms(products) / sizes.sqrt()


def chunk_slices(count: int, item_bytes: int, max_bytes: int | None) -> list[slice]:
    """Slices of range(count), each of at least one item, whose items take `max_bytes` at most
    (one slice of all when `max_bytes` is None)."""
    step = count if max_bytes is None else max(1, max_bytes // max(1, item_bytes))
    return [slice(start, start + step) for start in range(0, count, max(1, step))]


def _means(groups: ClassGroups) -> Tensor:
    return torch.einsum("gn,gnd->gd", groups.weights, groups.x)  # (G, d)


def _spread(groups: ClassGroups, means: Tensor) -> Tensor:
    """(G,) trace of each group's covariance: mean squared distance to the group mean.

    One group at a time: a (G, n, d) temporary would be the size of the whole source set.
    """
    pairs = zip(groups.x, groups.weights, means)
    return torch.stack([w @ (x - mean).pow(2).sum(-1) for x, w, mean in pairs])  # (G,)


def _centred_products(pair: GroupPair, mean_a: Tensor, mean_b: Tensor) -> Tensor:
    """(G_a, G_b, n_a, n_b) inner products of centred points, from the distance matrix.

    <x - mu, y - nu> = (|x|^2 + |y|^2 - |x - y|^2) / 2 - <x, nu> - <mu, y> + <mu, nu>.
    """
    xa, xb = pair.a.x, pair.b.x
    norms_b = torch.linalg.vector_norm(xb, dim=-1).square()  # (G_b, n_b), no (G_b, n_b, d) copy
    rows = 0.5 * xa.pow(2).sum(-1).unsqueeze(-1) - torch.einsum("gnd,hd->gnh", xa, mean_b)
    cols = 0.5 * norms_b.unsqueeze(0) - torch.einsum("gd,hmd->ghm", mean_a, xb)
    # rows: (G_a, n_a, G_b); cols: (G_a, G_b, n_b)
    cols = cols + (mean_a @ mean_b.T).unsqueeze(-1)  # (G_a, G_b, n_b)
    products = rows.permute(0, 2, 1).unsqueeze(-1) + cols.unsqueeze(2)  # (G_a, G_b, n_a, n_b)
    # One (G_a, G_b, n_a, n_b) buffer: the rest is applied in place.
    products.sub_(pair.dist.permute(0, 2, 1, 3), alpha=0.5 / pair.scale)
    products.mul_((pair.a.weights > 0)[:, None, :, None]).mul_((pair.b.weights > 0)[None, :, None])
    return products


def _nuclear_norms(matrices: Tensor) -> Tensor:
    """(...,) sums of singular values of (..., n, m) matrices, via the smaller Gram matrix.

    Eigenvalues of the Gram matrix below its rounding noise (size * machine epsilon times the
    largest) are left out: their square roots would be noise of size sqrt(epsilon), and the
    square root's derivative blows up there (centred classes always have such directions).
    """
    if matrices.shape[-2] > matrices.shape[-1]:
        matrices = matrices.transpose(-1, -2)
    gram = matrices @ matrices.transpose(-1, -2)  # (..., min(n, m), min(n, m))
    eig = torch.linalg.eigvalsh(gram)  # (..., min(n, m)), ascending
    noise = eig[..., -1:].detach() * (gram.shape[-1] * torch.finfo(eig.dtype).eps)
    floor = noise.clamp(min=torch.finfo(eig.dtype).tiny)
    return torch.where(eig > floor, eig.clamp(min=floor).sqrt(), 0.0).sum(-1)


# --------------------------------------------------------------------------- the distance


@dataclasses.dataclass
class SourceCache:
    """Work on the source set that does not depend on the target, done once.

    Attributes:
        groups: the source points by class, (K_s, m, d) padded.
        labels: (K_s,) the distinct source labels, in the order of the groups.
        self_values: (K_s,) entropic OT of each source class with itself (with debias),
            else None.
        label_costs: (K_s, K_s) label distances between source classes (with debias), else
            None.
        self_value: () OT of the source with itself under the OTDD cost, the source term of
            the debiased distance, else None.
        norms: (K_s * m,) squared norms of the source points, for the distance matrices.
        warm: column potentials of the last call's problems by (kind, target label), used as
            warm starts by the next call.
    """

    groups: ClassGroups
    labels: Tensor
    self_values: Tensor | None
    label_costs: Tensor | None
    self_value: Tensor | None
    norms: Tensor | None = None
    warm: dict = dataclasses.field(default_factory=dict)

    # The fields that are results of solving problems, as opposed to the source itself.
    TERMS = ("self_values", "label_costs", "self_value")

    def terms(self) -> dict[str, Tensor]:
        """The solved source terms by name (those that are not None), for storing."""
        found = {name: getattr(self, name) for name in self.TERMS}
        return {name: value.detach() for name, value in found.items() if value is not None}


class OTDD:
    r"""Optimal transport dataset distance from target sets to one fixed, labeled source set.

    The ground cost between a labeled target point (x, y) and a source point (x', y') is

    .. math::
        c((x, y), (x', y')) = s \|x - x'\|^2 + \lambda\, W(y, y')

    with W the label distance (see `LABEL_DISTANCES`), s = `feature_scale` and
    :math:`\lambda` = `label_weight`; the distance is the entropic OT value under that cost,
    debiased (Sinkhorn divergence) with `debias`:

    .. math::
        \mathrm{OTDD}(D_t, D_s) = \mathrm{OT}_\varepsilon(D_t, D_s)
            - \tfrac12 \mathrm{OT}_\varepsilon(D_t, D_t)
            - \tfrac12 \mathrm{OT}_\varepsilon(D_s, D_s)

    Shapes: source_x (n_s, d) float, source_y (n_s,) integer labels of any values. The value
    is differentiable with respect to the target features, through the label distances too
    unless `detach_label_cost`; Sinkhorn values use the envelope gradient (see `sinkhorn`).
    `per_group` forms that gradient with the values, in chunks of target groups whose work
    buffers fit in `chunk_bytes` (by default the size of the source features, which keeps a
    step within twice the source features plus the target batch when one group's buffers fit),
    and keeps only it for the backward pass; `whole` leaves it to autograd, which keeps its
    cost matrices and transport plans until then. `source_terms`, the `SourceCache.terms()`
    of an earlier distance with the same source and settings (e.g. read from disk), replace
    the source-only work.

    Reference:
        D. Alvarez-Melis and N. Fusi. Geometric dataset distances via optimal transport.
        NeurIPS 2020.

    Example:
        >>> distance = OTDD(source_x, source_y, SinkhornOptions(reg=0.1))
        >>> groups = ClassGroups.gather(target_x, index, classes)  # see `class_index`
        >>> distance.per_group(groups, keys=classes.tolist())  # (G,) one value per group
    """

    def __init__(
        self,
        source_x: Tensor,
        source_y: Tensor,
        options: SinkhornOptions,
        *,
        inner: str = "exact",
        debias: bool = True,
        feature_scale: float = 1.0,
        label_weight: float = 1.0,
        detach_label_cost: bool = False,
        warm_start: bool = True,
        chunk_bytes: int | None = None,
        source_terms: dict[str, Tensor] | None = None,
    ) -> None:
        self.options, self.debias, self.chunk_bytes = options, debias, chunk_bytes
        self.feature_scale, self.label_weight = feature_scale, label_weight
        self.detach_label_cost, self.warm_start = detach_label_cost, warm_start
        self.label_distance = LABEL_DISTANCES.get(inner)(self.solve, debias)
        self.warned = False
        self.cache = self.build_cache(source_x.detach(), source_y, source_terms)

    def per_group(self, groups: ClassGroups, keys: Sequence[Hashable]) -> Tensor:
        """(G,) distance from each target group, all points given its class, to the source.

        `keys` (one per group, e.g. the original label) index the warm-start potentials. The
        groups are solved in chunks whose work buffers fit in `chunk_bytes`, and the gradient
        w.r.t. `groups.x` is formed with the values, chunk by chunk: the backward pass keeps
        only that (G, b, d) gradient, no cost matrix or transport plan.
        """
        track = torch.is_grad_enabled() and groups.x.requires_grad
        own = self._self_problems(groups) if self.debias else None  # (b, b) problems, one batch
        values = groups.x.new_empty(len(groups.x))  # (G,)
        gradient = torch.empty_like(groups.x) if track else None  # (G, b, d)
        self_weights = torch.zeros_like(values)  # (G,) derivatives w.r.t. the self terms
        for part in self._chunks(groups):
            self_target = None if own is None else own.value[part].clone()
            terms = self._chunk_terms(groups.select(part), self_target, keys[part], track)
            values[part] = terms[0]
            if track:
                gradient[part], self_weights[part] = terms[1], terms[2]
        if track and own is not None:
            gradient += self._self_gradient(groups.x.detach(), own.plan, self_weights)
        return envelope_value(groups.x, values, gradient) if track else values

    def _chunks(self, groups: ClassGroups) -> list[slice]:
        """Slices of at least one group whose work buffers take at most `chunk_bytes`."""
        source = self.cache.groups
        budget = self._work_budget(source)
        size = groups.x.shape[1] * source.weights.numel() * groups.x.element_size()
        buffers = OUTER_BUFFERS + self.label_distance.work_buffers  # each (b, n_s) per group
        step = max(1, budget // (buffers * size))
        return [slice(start, start + step) for start in range(0, len(groups.x), step)]

    def _chunk_terms(self, groups, self_target, keys, track) -> tuple[Tensor, ...]:
        """Distances (c,) of a chunk of groups, given their self terms (c,) or None.

        With `track`, also their (c, b, d) gradients w.r.t. the points, self terms held fixed,
        and (c,) derivatives w.r.t. the self terms; else None for both. The outer problem is
        solved without autograd: its plan gives the gradient.
        """
        points = dataclasses.replace(groups, x=groups.x.detach().requires_grad_(track))
        if self_target is not None:
            self_target.requires_grad_(track and not self.detach_label_cost)
        dist, label_costs = self._label_terms(points, self_target, keys, track)

        # The distances become the outer cost in place; autograd would object if the label
        # costs had kept them for their backward pass.
        costs = dist.detach().add_(self.label_weight * label_costs.detach()[:, None, :, None])
        source_weights = self.cache.groups.flat_weights().expand(len(dist), -1)  # (c, K_s m)
        outer = self._solve_warm("outer", keys, costs.flatten(2), groups.weights, source_weights)
        values = outer.value
        if self.debias:
            # A one-label group's own label distance is zero (debiased or Gaussian), so its self
            # term under the OTDD cost is its plain entropic OT with itself.
            values = values - 0.5 * (self_target.detach() + self.cache.self_value)
        if not track:
            return values, None, None
        plan = outer.plan.view(dist.shape)  # (c, b, K_s, m)
        return values, *self._chunk_gradient(points, self_target, dist, plan, label_costs)

    def _label_terms(self, groups, self_target, keys, track) -> tuple[Tensor, Tensor]:
        """Distances to the source (c, b, K_s, m) and label costs (c, K_s) of a chunk.

        With `track`, the label costs keep their autograd graph back to the groups' points, to
        the self terms and to the distances, which are computed without it and made a leaf.
        """
        with torch.no_grad():  # (c, b, K_s, m)
            dist = group_distances(groups, self.cache.groups, self.feature_scale, self.cache.norms)
        dist.requires_grad_(track and not self.detach_label_cost)
        with torch.set_grad_enabled(track):
            label_costs = self._label_costs(groups, dist, self_target, keys)  # (c, K_s)
        return dist, label_costs

    def _chunk_gradient(
        self, groups, self_target, dist, plan, label_costs
    ) -> tuple[Tensor, Tensor]:
        """(c, b, d) gradient of a chunk's distances w.r.t. its points, (c,) w.r.t. self terms.

        The outer value's gradient w.r.t. its cost is its plan P (envelope theorem). The cost
        is the distances plus `label_weight` times the label costs, so P passes to the label
        costs by its mass on each source class, and to the distances as it is; autograd takes
        the label costs back to the distances, points and self terms. `plan` is overwritten
        with the gradient w.r.t. the distances.
        """
        mass = plan.sum((1, 3))  # (c, K_s) mass moved to each source class
        through_labels = self.label_weight * (mass * label_costs).sum()
        inputs = (dist, groups.x, self_target)
        through_dist, through_points, through_self = _gradients(through_labels, inputs)
        if through_dist is not None:
            plan += through_dist  # (c, b, K_s, m)
        source = self.cache.groups.x.flatten(0, 1)  # (K_s m, d)
        weights = plan.flatten(2)  # (c, b, K_s m)
        gradient = squared_distances_gradient(
            groups.x.detach(), source, weights, self.feature_scale
        )
        if through_points is not None:
            gradient += through_points
        self_weights = torch.full_like(mass[:, 0], -0.5 if self.debias else 0.0)  # outer debias
        return gradient, self_weights if through_self is None else self_weights + through_self

    def whole(self, groups: ClassGroups, keys: Sequence[Hashable]) -> Tensor:
        """() distance from the target set made of all `groups` (with their labels)."""
        dist = group_distances(groups, self.cache.groups, self.feature_scale)  # (G, b, K_s, m)
        within = group_distances(groups, groups, self.feature_scale)  # (G, b, G, b)
        self_groups = self._self_ot(groups, within) if self.debias else None  # (G,)
        label_costs = self._label_costs(groups, dist, self_groups, keys)  # (G, K_s)
        cost = self._ground_cost(dist, label_costs).flatten(0, 1).unsqueeze(0)  # (1, Gb, K_s m)
        weights = groups.flat_weights().unsqueeze(0)  # (1, G b)
        source_weights = self.cache.groups.flat_weights().unsqueeze(0)  # (1, K_s m)
        cross = self._solve_warm("whole", [tuple(keys)], cost, weights, source_weights).value[0]
        if not self.debias:
            return cross
        pair = GroupPair(groups, groups, within, self.feature_scale, self_groups, self_groups)
        self_target = self.dataset_self_ot(pair)[0].value[0]
        return cross - 0.5 * (self_target + self.cache.self_value)

    def build_cache(
        self, x: Tensor, y: Tensor, terms: dict[str, Tensor] | None = None
    ) -> SourceCache:
        """Group the source by class and solve its label distances and self term, once.

        With `terms` (see `SourceCache.terms`), the solved terms are adopted as they are.
        """
        labels, classes = torch.unique(y, return_inverse=True)
        order = torch.arange(len(y), device=y.device)
        index = class_index(classes, len(labels), order, None)  # (K_s, m)
        groups = ClassGroups.gather(x, index, torch.arange(len(labels), device=y.device))
        norms = groups.x.pow(2).sum(-1).flatten()  # (K_s m,)
        if not self.debias:  # nothing else about the source enters the distance
            return SourceCache(groups, labels, None, None, None, norms)
        if terms is not None:
            _check_terms(terms, len(labels))
            found = [terms[name].to(x) for name in SourceCache.TERMS]
            return SourceCache(groups, labels, *found, norms)
        # No (n_s, n_s) matrix is formed: every problem is solved in chunks or blocks whose
        # buffers fit in the work budget, so memory stays near the source features' size.
        budget = self._work_budget(groups)
        with torch.no_grad():
            self_classes = self._self_ot(groups, max_bytes=budget)  # (K_s,)
            label_costs = self.label_distance.among(
                groups, self.feature_scale, self_classes, budget
            )  # (K_s, K_s)
            self_value = self._source_self_ot(groups, label_costs, budget).value
        logger.debug("source work done: %d points in %d classes", len(y), len(labels))
        return SourceCache(groups, labels, self_classes, label_costs, self_value, norms)

    def _work_budget(self, groups: ClassGroups) -> int:
        """Bytes of work buffers allowed at once: `chunk_bytes`, else the source features'."""
        point_bytes = groups.x.shape[-1] * groups.x.element_size()
        return self.chunk_bytes or int(groups.counts.sum()) * point_bytes

    def _source_self_ot(
        self, groups: ClassGroups, label_costs: Tensor, max_bytes: int
    ) -> SelfTransport:
        """OT of the source with itself under the OTDD cost, its cost made a block at a time.

        The points stay in their padded (K_s, m) layout (padding has zero weight), so the
        columns of class k are k m .. (k + 1) m - 1 and a tile's label costs add class by class.
        """
        m = groups.x.shape[1]
        x = groups.x.flatten(0, 1)  # (K_s m, d), a view
        norms = x.pow(2).sum(-1)  # (K_s m,)
        label_rows = (self.label_weight * label_costs).repeat_interleave(m, dim=0)  # (K_s m, K_s)

        def cost_block(rows: slice, cols: slice, out: Tensor) -> Tensor:
            torch.addmm(norms[cols], x[rows], x[cols].T, alpha=-2, out=out)  # (r, c)
            out.add_(norms[rows, None]).clamp_(min=0).mul_(self.feature_scale)
            for k in range(cols.start // m, (cols.stop - 1) // m + 1):  # classes of the columns
                low, high = max(cols.start, k * m), min(cols.stop, (k + 1) * m)
                out[:, low - cols.start : high - cols.start].add_(label_rows[rows, k, None])
            return out

        # Two (side, side) tiles: the cost and its logits.
        side = max(1, math.isqrt(max_bytes // (2 * x.element_size())))
        options = self.options
        result = symmetric_sinkhorn_by_blocks(
            cost_block, groups.flat_weights(), options.reg, max_iter=options.max_iter,
            tol=options.tol, scaling=options.scaling, block_size=side,
        )  # fmt: skip
        self._warn_unconverged(result.converged, result.error)
        return result

    def dataset_self_ot(self, pair: GroupPair) -> tuple[SinkhornResult, Tensor]:
        """OT under the OTDD cost of the labeled set `pair.a` (== `pair.b`) with itself.

        Returns the Sinkhorn result of the (1, G n, G n) problem and the (G, G) label costs.
        """
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_label_cost):
            label_costs = self.label_distance.between(pair)[0]  # (G, G)
        cost = self._ground_cost(pair.dist, label_costs).flatten(0, 1).unsqueeze(0)  # (1, Gn, Gn)
        weights = pair.a.flat_weights().unsqueeze(0)  # (1, G n)
        return self.solve(cost, weights, weights, symmetric=True), label_costs

    def _self_ot(
        self, groups: ClassGroups, within: Tensor | None = None, max_bytes: int | None = None
    ) -> Tensor:
        """(G,) entropic OT of each group with itself, from (G, n, G, n) or own distances.

        Without `within`, groups are solved a chunk at a time whose buffers fit in `max_bytes`.
        """
        if within is not None:
            cost = torch.diagonal(within, dim1=0, dim2=2).permute(2, 0, 1)  # (G, n, n)
            return self.solve(cost, groups.weights, groups.weights, symmetric=True).value
        n = groups.weights.shape[1]
        # The cost and kernel of each problem, and about as much again in the solver's
        # temporaries and the allocator's slack (measured on the source work).
        group_bytes = 2 * OUTER_BUFFERS * n * n * groups.x.element_size()
        values = []
        for part in chunk_slices(len(groups.x), group_bytes, max_bytes):
            chunk = groups.select(part)
            cost = squared_distances(chunk.x, chunk.x).mul_(self.feature_scale)  # (c, n, n)
            values.append(self.solve(cost, chunk.weights, chunk.weights, symmetric=True).value)
        return torch.cat(values)

    def _self_problems(self, groups: ClassGroups) -> SinkhornResult:
        """Entropic OT of each group with itself, solved without autograd: G (n, n) problems."""
        with torch.no_grad():
            cost = squared_distances(groups.x, groups.x).mul_(self.feature_scale)  # (G, n, n)
            return self.solve(cost, groups.weights, groups.weights, symmetric=True)

    def _self_gradient(self, x: Tensor, plans: Tensor, weights: Tensor) -> Tensor:
        """(G, n, d) gradient w.r.t. x (G, n, d) of the self terms' values times `weights` (G,).

        Each value's gradient w.r.t. its cost is its plan (G, n, n); the points are both the
        rows and the columns of the cost, so the plan acts from both sides.
        """
        weighted = plans * weights[:, None, None]  # (G, n, n)
        both_sides = weighted + weighted.transpose(-1, -2)  # (G, n, n)
        return squared_distances_gradient(x, x, both_sides, self.feature_scale)

    def _label_costs(self, groups, dist, self_target, keys) -> Tensor:
        """(G, K_s) label distances from the target groups to the source classes."""
        pair = GroupPair(
            groups, self.cache.groups, dist, self.feature_scale, self_target, self.cache.self_values
        )
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.detach_label_cost):
            costs, potentials = self.label_distance.between(pair, self._warm("inner", keys))
        self._remember("inner", keys, potentials)
        return costs

    def _ground_cost(self, dist: Tensor, label_costs: Tensor) -> Tensor:
        """(G_a, n_a, G_b n_b) OTDD ground cost: feature distance plus weighted label distance."""
        cost = dist + self.label_weight * label_costs[:, None, :, None]  # (G_a, n_a, G_b, n_b)
        return cost.flatten(2)  # (G_a, n_a, G_b n_b)

    def solve(
        self,
        cost: Tensor,
        a: Tensor,
        b: Tensor,
        init: Tensor | None = None,
        symmetric: bool = False,
    ) -> SinkhornResult:
        """`SinkhornOptions.solve`, warning once per distance when a problem does not converge."""
        result = self.options.solve(cost, a, b, init, symmetric)
        self._warn_unconverged(result.converged, result.error)
        return result

    def _warn_unconverged(self, converged: bool, error: float) -> None:
        """Warn, once per distance, that a Sinkhorn problem stopped before `tol`."""
        if not converged and not self.warned:
            logger.warning(
                "OTDD: Sinkhorn stopped at marginal error %.1e > tol=%.0e after max_iter=%d "
                "iterations (reg=%g); raise max_iter or reg, or loosen tol (said once)",
                error, self.options.tol, self.options.max_iter, self.options.reg,
            )  # fmt: skip
            self.warned = True

    def _solve_warm(self, kind, keys, cost, a, b) -> SinkhornResult:
        """A batch of problems started from the potentials stored under `keys`."""
        result = self.solve(cost, a, b, self._warm(kind, keys))
        self._remember(kind, keys, result.g)
        return result

    def _warm(self, kind: str, keys: Sequence[Hashable]) -> Tensor | None:
        """Stacked potentials of earlier problems under `keys`, or None unless all are known."""
        found = [self.cache.warm.get((kind, key)) for key in keys]
        if not self.warm_start or any(potential is None for potential in found):
            return None
        return torch.stack(found)

    def _remember(self, kind: str, keys: Sequence[Hashable], potentials: Tensor | None) -> None:
        if self.warm_start and potentials is not None:
            for key, potential in zip(keys, potentials):
                self.cache.warm[(kind, key)] = potential.detach()


class SourceTermsError(ValueError):
    """Stored source terms that do not fit the source they were given with."""


def _check_terms(terms: dict[str, Tensor], n_classes: int) -> None:
    """Raise SourceTermsError unless `terms` are a debiased source's terms for `n_classes`."""
    shapes = {"self_values": (n_classes,), "label_costs": (n_classes, n_classes), "self_value": ()}
    found = {name: tuple(terms[name].shape) for name in shapes if name in terms}
    if found != shapes:
        raise SourceTermsError(
            f"stored source terms do not fit this source: expected shapes {shapes}, got {found}"
        )


def _gradients(output: Tensor, inputs: tuple[Tensor | None, ...]) -> list[Tensor | None]:
    """Gradients of the scalar `output` w.r.t. `inputs`; None for those it does not reach."""
    if not output.requires_grad:
        return [None] * len(inputs)
    wanted = [x for x in inputs if x is not None and x.requires_grad]
    found = iter(torch.autograd.grad(output, wanted, allow_unused=True))
    return [next(found) if x is not None and x.requires_grad else None for x in inputs]
