"""Entropic optimal transport by Sinkhorn iterations, for batches of problems at once.

The solver anneals the regularisation from the scale of the cost matrix down to `reg`
(epsilon scaling), keeps its numbers in range by folding the potentials into the kernel
(log-domain stabilisation), and can start from the potentials of an earlier, similar problem.
Its value is differentiable with respect to the cost matrix through the envelope theorem.
POT's solvers serve as the reference in the tests; on the alignment stage's problems this
kernel was measured faster than POT's log-domain one, whose stabilised variant also fails in
float32 at small `reg` (see benchmarks/bench_otdd.py).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import torch
from torch import Tensor

logger = logging.getLogger(__name__)

# Kernel exponents are clamped here, after subtracting the row maximum. Float32 arithmetic is
# many times slower on subnormal numbers (below ~1e-38): in `exp` of inputs under about -87,
# and in the matrix-vector products when a kernel entry times a scaling factor falls that low.
EXP_FLOOR = -60.0
# Scaling factors are kept within [1 / SCALING_LIMIT, SCALING_LIMIT]; outside it they are folded
# into the potentials and the kernel is rebuilt. With EXP_FLOOR this keeps every product in the
# normal range and the mass of clamped entries below exp(-60) * 1e8 * m, negligible.
SCALING_LIMIT = 1e4


@dataclasses.dataclass
class SinkhornResult:
    """What `sinkhorn` returns for a batch of `B` problems of size `n` x `m`.

    Attributes:
        value: (B,) entropic OT value. Its gradient with respect to the cost is the plan.
        f: (B, n) row potentials (detached); zero where the row weight is zero.
        g: (B, m) column potentials (detached); zero where the column weight is zero.
        plan: (B, n, m) transport plan (detached).
        cost: (B, n, m) the cost matrices (detached).
        n_iter: iterations run at the final regularisation.
        error: largest L1 error of a marginal (over the batch) at the last iteration.
        converged: whether `error` fell below `tol` within `max_iter` iterations.
    """

    value: Tensor
    f: Tensor
    g: Tensor
    plan: Tensor
    cost: Tensor
    n_iter: int
    error: float
    converged: bool

    def transport_cost(self) -> Tensor:
        """(B,) linear part <P, C> of the objective (what `ot.sinkhorn2` reports), detached."""
        return (self.plan * self.cost).sum((-2, -1))


def sinkhorn(
    cost: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    reg: float = 0.1,
    *,
    max_iter: int = 1000,
    tol: float = 1e-6,
    scaling: float = 0.5,
    init: Tensor | None = None,
    symmetric: bool = False,
) -> SinkhornResult:
    r"""Solve entropic optimal transport problems with log-stabilised Sinkhorn iterations.

    For each problem of the batch, with cost matrix :math:`C` and weights :math:`a, b`:

    .. math::
        \mathrm{OT}_\varepsilon(a, b) = \min_{P \ge 0,\; P\mathbf{1} = a,\; P^\top\mathbf{1} = b}
            \langle P, C \rangle + \varepsilon\, \mathrm{KL}(P \,\|\, a b^\top)
        = \max_{f, g}\; \langle a, f \rangle + \langle b, g \rangle
            - \varepsilon \langle a b^\top, e^{(f \oplus g - C)/\varepsilon} - 1 \rangle

    with :math:`\varepsilon` = `reg`. The iterations alternately match the row and column
    marginals (Cuturi 2013). The regularisation starts at the largest spread of a cost row and
    is multiplied by `scaling` at each level, one iteration per level, until it reaches `reg`;
    there the iterations go on until the L1 error of the marginals is below `tol`. Given `init`
    (column potentials of an earlier problem with the same columns) the solver starts at `reg`.

    The returned value is differentiable with respect to `cost`: at the optimum its gradient
    is the transport plan (envelope theorem), which a custom autograd function returns without
    differentiating through the iterations. Weights receive no gradient; second derivatives are
    not supported.

    Args:
        cost: (n, m) or (B, n, m) cost matrices, float32 or float64.
        a: (n,) or (B, n) row weights, non-negative, summing to 1 per problem; uniform when
            None. Zero weights mark padding: those rows take no part in the problem.
        b: (m,) or (B, m) column weights, likewise.
        reg: entropic regularisation :math:`\varepsilon`, in the units of the cost.
        max_iter: most iterations at the final `reg`.
        tol: target L1 error of the marginals.
        scaling: factor between successive regularisations of the annealing, in (0, 1).
        init: (m,) or (B, m) column potentials to start from, e.g. `result.g` of a previous
            call; skips the annealing.
        symmetric: declare each problem a measure against itself (`cost` symmetric, a == b)
            to use averaged updates, which converge much faster there.

    Returns:
        A `SinkhornResult`; its tensors have no batch dimension when `cost` had none.

    Reference:
        M. Cuturi. Sinkhorn distances: lightspeed computation of optimal transport.
        NeurIPS 2013.

    Example:
        >>> x, y = torch.randn(5, 2), torch.randn(7, 2)
        >>> result = sinkhorn(torch.cdist(x, y) ** 2, reg=0.05)
        >>> result.plan.sum(1)  # the uniform column weights, 1/7 each
    """
    _check_problem(cost, a, b, reg, max_iter, tol, scaling)
    batched = cost.dim() == 3
    cost3 = cost if batched else cost.unsqueeze(0)  # (B, n, m)
    a3, b3 = _weights(a, cost3, -2), _weights(b, cost3, -1)  # (B, n), (B, m)
    g0 = None if init is None else init.to(cost3.dtype).expand(b3.shape)  # (B, m)
    result = solve_batch(cost3, a3, b3, reg, max_iter, tol, scaling, g0, symmetric)
    if not result.converged:
        logger.warning(
            "Sinkhorn stopped at marginal error %.2e > tol=%.1e after max_iter=%d iterations; "
            "raise max_iter or reg, or loosen tol",
            result.error,
            tol,
            max_iter,
        )
    return result if batched else _unbatch(result)


def solve_batch(
    cost: Tensor,
    a: Tensor,
    b: Tensor,
    reg: float,
    max_iter: int,
    tol: float,
    scaling: float,
    init: Tensor | None = None,
    symmetric: bool = False,
) -> SinkhornResult:
    """`sinkhorn` for callers that checked their inputs: every argument batched and given.

    Args:
        cost: (B, n, m) cost matrices.
        a: (B, n) row weights (zero on padding).
        b: (B, m) column weights (zero on padding).
        reg, max_iter, tol, scaling: as in `sinkhorn`.
        init: (B, m) column potentials to start from, or None for a cold start.
        symmetric: each problem is a measure against itself (C symmetric, a == b). The
            iterations then average each potential with its update, f <- (f + T(f)) / 2,
            which converges in a few steps where alternating updates oscillate.

    Returns:
        A batched `SinkhornResult`, silent about convergence (see its `converged`).
    """
    state_type = _SymmetricState if symmetric else _ScalingState
    with torch.no_grad():
        state = _solve(state_type, cost.detach(), a, b, reg, max_iter, tol, scaling, init)
    return state.result(cost, tol)


def sinkhorn_divergence(
    cost_xy: Tensor,
    cost_xx: Tensor,
    cost_yy: Tensor,
    a: Tensor | None = None,
    b: Tensor | None = None,
    reg: float = 0.1,
    **options,
) -> Tensor:
    r"""Debiased entropic OT between two measures (the Sinkhorn divergence).

    .. math::
        S_\varepsilon(a, b) = \mathrm{OT}_\varepsilon(a, b)
            - \tfrac12 \mathrm{OT}_\varepsilon(a, a) - \tfrac12 \mathrm{OT}_\varepsilon(b, b)

    It is zero when the two measures are equal and positive otherwise (for costs such as
    squared Euclidean distances), unlike :math:`\mathrm{OT}_\varepsilon` itself.

    Args:
        cost_xy: (n, m) or (B, n, m) costs between the two supports.
        cost_xx: (n, n) or (B, n, n) costs within the first support.
        cost_yy: (m, m) or (B, m, m) costs within the second support.
        a: (n,) or (B, n) weights of the first measure; uniform when None.
        b: (m,) or (B, m) weights of the second measure; uniform when None.
        reg: entropic regularisation, in the units of the cost.
        **options: `max_iter`, `tol`, `scaling` as in `sinkhorn`.

    Returns:
        () or (B,) divergence, differentiable with respect to the three cost matrices.

    Reference:
        J. Feydy et al. Interpolating between optimal transport and MMD using Sinkhorn
        divergences. AISTATS 2019.

    Example:
        >>> x = torch.randn(6, 3)
        >>> c = torch.cdist(x, x) ** 2
        >>> sinkhorn_divergence(c, c, c)  # 0: a measure against itself
    """
    cross = sinkhorn(cost_xy, a, b, reg, **options).value
    self_x = sinkhorn(cost_xx, a, a, reg, symmetric=True, **options).value
    self_y = sinkhorn(cost_yy, b, b, reg, symmetric=True, **options).value
    return cross - 0.5 * (self_x + self_y)


@dataclasses.dataclass
class SelfTransport:
    """What `symmetric_sinkhorn_by_blocks` returns for one measure of `n` points.

    Attributes:
        value: () entropic OT value of the measure with itself (no autograd history).
        potential: (n,) its potential f, the same for rows and columns.
        n_iter: iterations run at the final regularisation.
        error: L1 error of the marginal at the last iteration.
        converged: whether `error` fell below `tol` within `max_iter` iterations.
    """

    value: Tensor
    potential: Tensor
    n_iter: int
    error: float
    converged: bool


def symmetric_sinkhorn_by_blocks(
    cost_block: Callable[[slice, slice, Tensor], Tensor],
    a: Tensor,
    reg: float,
    *,
    max_iter: int = 100,
    tol: float = 1e-2,
    scaling: float = 0.5,
    block_size: int = 1024,
) -> SelfTransport:
    r"""Entropic OT of a measure with itself, forming its cost matrix one tile at a time.

    The problem, value and iterations are those of ``sinkhorn(C, a, a, reg, symmetric=True)``:

    .. math::
        \mathrm{OT}_\varepsilon(a, a) = \max_f\; 2 \langle a, f \rangle
            - \varepsilon \langle a a^\top, e^{(f \oplus f - C)/\varepsilon} - 1 \rangle,
        \qquad f \leftarrow \tfrac12 \big(f + T(f)\big),\;
        T(f)_i = -\varepsilon \log \sum_j a_j e^{(f_j - C_{ij}) / \varepsilon}

    annealed from the largest spread of a cost row down to `reg`. The (n, n) cost is never
    held: each pass asks `cost_block` for the tiles on and above the diagonal, each used for
    its rows and, transposed, for its columns, so memory stays at two (block_size,
    block_size) buffers. Every pass forms the tiles again, which costs time; use it where the
    whole matrix would not fit, such as a large source set's term of a debiased distance,
    computed once.

    Args:
        cost_block: ``cost_block(rows, cols, out)`` fills `out`, of shape (len(rows),
            len(cols)), with that tile of the symmetric cost matrix and returns it; `rows` and
            `cols` are slices.
        a: (n,) non-negative weights summing to 1; zero weights mark padding, which takes
            no part in the problem (its potential is zero).
        reg: entropic regularisation :math:`\varepsilon`, in the units of the cost.
        max_iter, tol, scaling: as in `sinkhorn`.
        block_size: side of the square tiles.

    Returns:
        A `SelfTransport`.

    Reference:
        J. Feydy et al. Interpolating between optimal transport and MMD using Sinkhorn
        divergences. AISTATS 2019 (the averaged symmetric iteration).

    Example:
        >>> x = torch.randn(1000, 3)
        >>> tile = lambda rows, cols, out: out.copy_(torch.cdist(x[rows], x[cols]).square_())
        >>> symmetric_sinkhorn_by_blocks(tile, torch.full((1000,), 1e-3), 0.1).value
    """
    if a.dim() != 1 or len(a) == 0:
        raise ValueError(f"a must be a non-empty (n,) weight vector, got shape {tuple(a.shape)}")
    _check_problem(a.new_zeros(1, len(a)), None, a, reg, max_iter, tol, scaling)
    if block_size < 1:
        raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
    tiles = _Tiles(cost_block, a, block_size)
    active = a > 0  # (n,) padding rows are computed but kept out of every sum

    def averaged(f: Tensor, update: Tensor) -> Tensor:
        return torch.where(active, 0.5 * (f + update), 0.0)

    f = torch.zeros_like(a)
    for eps in annealing_levels(tiles.spread(), reg, scaling)[:-1]:
        f = averaged(f, tiles.softmin(f, eps))
    n_iter, error = 0, math.inf
    while n_iter < max_iter and not error < tol:
        update = tiles.softmin(f, reg)  # T(f)
        row_mass = torch.where(active, a * ((f - update) / reg).exp(), 0.0)  # rows of (f, f)
        error = float((row_mass - a).abs().sum())
        f = averaged(f, update)
        n_iter += 1
    # The value of the pair (T(f), f), whose row marginal is exact, as `sinkhorn` reports it.
    rows = torch.where(active, tiles.softmin(f, reg), 0.0)
    return SelfTransport(a @ rows + a @ f, f, n_iter, error, error < tol)


# Stands for log(0) in the logits of padding columns: finite, so that a tile made only of
# padding gives a finite maximum, yet far below any real logit.
_LOG_ZERO = -1e30


class _Tiles:
    """Passes of `symmetric_sinkhorn_by_blocks` over the tiles i <= j of a symmetric cost."""

    def __init__(self, cost_block, a: Tensor, size: int) -> None:
        n = len(a)
        self.cost_block, self.a = cost_block, a
        self.slices = [slice(start, min(start + size, n)) for start in range(0, n, size)]
        side = min(size, n)
        self.buffers = (a.new_empty(side * side), a.new_empty(side * side))  # cost, logits

    def _tiles(self):
        """(rows, cols, cost tile) for every tile on or above the diagonal."""
        for i, rows in enumerate(self.slices):
            for cols in self.slices[i:]:
                shape = (rows.stop - rows.start, cols.stop - cols.start)
                out = self.buffers[0][: shape[0] * shape[1]].view(shape)
                yield rows, cols, self.cost_block(rows, cols, out)

    def _work(self, shape) -> Tensor:
        return self.buffers[1][: shape[0] * shape[1]].view(shape)

    def spread(self) -> float:
        """Largest max - min of a cost row, where the annealing starts."""
        high = torch.full_like(self.a, -math.inf)
        low = torch.full_like(self.a, math.inf)
        for rows, cols, cost in self._tiles():
            for dim, index in ((1, rows), (0, cols)):
                high[index] = torch.maximum(high[index], cost.amax(dim))
                low[index] = torch.minimum(low[index], cost.amin(dim))
        return float((high - low).max())

    def softmin(self, f: Tensor, eps: float) -> Tensor:
        """(n,) T(f)_i = -eps log sum_j a_j exp((f_j - C_ij) / eps), tile by tile."""
        h = torch.where(self.a > 0, f / eps + self.a.log(), _LOG_ZERO)  # (n,)
        top = torch.full_like(f, -math.inf)  # running maximum of each row's logits
        total = torch.zeros_like(f)  # running sum of exp(logit - top)
        for rows, cols, cost in self._tiles():
            logits = torch.add(h[cols], cost, alpha=-1.0 / eps, out=self._work(cost.shape))
            _fold(logits, 1, rows, top, total)  # (r, c): the tile's rows
            if rows != cols:
                logits = torch.add(h[rows, None], cost, alpha=-1.0 / eps, out=logits)
                _fold(logits, 0, cols, top, total)  # the transposed tile's rows
        return -eps * (top + total.log())


def _fold(logits: Tensor, dim: int, index: slice, top: Tensor, total: Tensor) -> None:
    """Fold the log-sum-exp of `logits` along `dim` into the running `top`, `total` of `index`.

    `logits` is overwritten. Exponents are clamped at EXP_FLOOR below each maximum.
    """
    block_top = logits.amax(dim)  # (k,)
    new_top = torch.maximum(top[index], block_top)
    block_sum = logits.sub_(block_top.unsqueeze(dim)).clamp_(min=EXP_FLOOR).exp_().sum(dim)
    total[index] = (
        total[index] * (top[index] - new_top).exp() + block_sum * (block_top - new_top).exp()
    )
    top[index] = new_top


def epsilon_schedule(cost: Tensor, reg: float, scaling: float, warm: bool) -> list[float]:
    """Regularisations from the largest spread of a cost row down to `reg`, ending at `reg`.

    A warm start (potentials from a similar problem) needs no annealing: only `[reg]`.
    """
    if warm:
        return [reg]
    return annealing_levels(float((cost.amax(-1) - cost.amin(-1)).max()), reg, scaling)


def annealing_levels(spread: float, reg: float, scaling: float) -> list[float]:
    """`spread`, `spread * scaling`, ... while above `reg`, then `reg`."""
    eps = spread
    levels = []
    while eps > reg:
        levels.append(eps)
        eps *= scaling
    return [*levels, reg]


def _solve(state_type, cost, a, b, reg, max_iter, tol, scaling, g) -> _ScalingState:
    """Run the annealing levels, then iterate at `reg` until the marginals match to `tol`."""
    schedule = epsilon_schedule(cost, reg, scaling, warm=g is not None)
    g = torch.zeros_like(b) if g is None else torch.where(b > 0, g, 0.0)
    kernel = torch.empty_like(cost)  # one buffer for every level's kernel, then the plan
    for eps in schedule[:-1]:
        state = state_type(cost, a, b, g, eps, kernel)
        state.step()
        g = state.potentials()[1]

    state = state_type(cost, a, b, g, reg, kernel)
    state.run(max_iter, tol)
    state.finish()
    return state


class _ScalingState:
    """Sinkhorn at one regularisation, in the scaling form of the stabilised kernel.

    With stabilisers `shift` (B, n) and `g0` (B, m), the kernel is
    K_ij = exp((g0_j + eps log b_j - C_ij) / eps - shift_i), each row's maximum 1, and the
    plan is P_ij = a_i u_i K_ij v_j. The potentials are f = eps (log u - shift) and
    g = g0 + eps log v. A step is two batched matrix-vector products; the kernel is rebuilt
    (u and v folded into the stabilisers) only when a scaling factor leaves a safe range.
    """

    def __init__(self, cost, a, b, g0, eps, buffer) -> None:
        self.cost, self.a, self.b, self.eps = cost, a, b, eps
        self.idle = (a == 0, b == 0)  # padding rows and columns, whose scalings are ignored
        self.n_iter, self.error = 0, math.inf
        self._stabilise(g0, buffer)

    def _stabilise(self, g0: Tensor, buffer: Tensor) -> None:
        self.g0 = g0
        h = (g0 + self.eps * self.b.log()) / self.eps  # (B, m); -inf on zero-weight columns
        kernel = torch.add(h.unsqueeze(-2), self.cost, alpha=-1.0 / self.eps, out=buffer)
        shift = kernel.amax(-1, keepdim=True)  # (B, n, 1)
        kernel.sub_(shift).clamp_(min=EXP_FLOOR).exp_()  # (B, n, m), row maxima 1
        self.kernel, self.shift = kernel, shift.squeeze(-1)
        self.u, self.v = torch.ones_like(self.a), torch.ones_like(self.b)

    def step(self) -> None:
        """Match the row marginals, then the column marginals; record the column error."""
        if self._out_of_range():
            self._stabilise(self.potentials()[1], self.kernel)
        self.u = 1.0 / _row_sums(self.kernel, self.v)  # (B, n)
        au = (self.a * self.u).unsqueeze(-2)  # (B, 1, n)
        column_mass = torch.bmm(au, self.kernel).squeeze(-2)  # (B, m)
        self.error = float((self.v * column_mass - self.b).abs().sum(-1).max())
        self.v = self.b / column_mass
        self.n_iter += 1

    def _out_of_range(self) -> bool:
        """Whether a scaling factor of a weighted row or column left the safe range."""
        scalings = (self.u.masked_fill(self.idle[0], 1.0), self.v.masked_fill(self.idle[1], 1.0))
        low, high = torch.aminmax(torch.cat(scalings, -1))
        return float(low) * SCALING_LIMIT < 1.0 or float(high) > SCALING_LIMIT

    def run(self, max_iter: int, tol: float) -> None:
        while self.n_iter < max_iter and not self.error < tol:
            self.step()

    def finish(self) -> None:
        """Make u and v consistent before reading the result (they are after a step)."""

    def potentials(self) -> tuple[Tensor, Tensor]:
        """(B, n) and (B, m) potentials, zero where the weight is zero."""
        f = self.eps * (self.u.log() - self.shift)
        g = self.g0 + self.eps * self.v.log()
        return torch.where(self.a > 0, f, 0.0), torch.where(self.b > 0, g, 0.0)

    def result(self, cost: Tensor, tol: float) -> SinkhornResult:
        """Value, potentials and plan; the plan is written over the kernel."""
        f, g = self.potentials()
        value = (self.a * f).sum(-1) + (self.b * g).sum(-1)  # (B,)
        plan = self.kernel.mul_((self.a * self.u).unsqueeze(-1)).mul_(self.v.unsqueeze(-2))
        return SinkhornResult(
            value=envelope_value(cost, value, plan),
            f=f,
            g=g,
            plan=plan,
            cost=cost.detach(),
            n_iter=self.n_iter,
            error=self.error,
            converged=self.error < tol,
        )


class _SymmetricState(_ScalingState):
    """Sinkhorn for a measure against itself, by averaged updates of one potential.

    The potential is f = g0 + eps log v (columns and rows alike) and its update is
    f <- (f + T(f)) / 2 with T(f)_i = -eps log sum_j a_j exp((f_j - C_ij) / eps), one
    matrix-vector product per step. `finish` ends with a row update u, so that the value and
    plan are those of the pair (T(f), f), whose row marginals are exact.
    """

    def step(self) -> None:
        if self._out_of_range():
            self._stabilise(self.potentials()[1], self.kernel)
        f = self.g0 + self.eps * self.v.log()  # (B, n)
        update = -self.eps * (self.shift + _row_sums(self.kernel, self.v).log())  # T(f)
        row_mass = self.a * ((f - update) / self.eps).exp()  # rows of the plan of (f, f)
        self.error = float((row_mass - self.a).abs().sum(-1).max())
        averaged = ((0.5 * (f + update) - self.g0) / self.eps).exp()
        self.v = torch.where(self.b > 0, averaged, 0.0)
        self.n_iter += 1

    def finish(self) -> None:
        self.u = 1.0 / _row_sums(self.kernel, self.v)


def _row_sums(kernel: Tensor, v: Tensor) -> Tensor:
    """(B, n) products K v; a loop of matrix-vector products beats `bmm` for few problems."""
    if kernel.shape[0] > 32:
        return torch.bmm(kernel, v.unsqueeze(-1)).squeeze(-1)
    return torch.stack([torch.mv(k, x) for k, x in zip(kernel, v)])


def envelope_value(inputs: Tensor, value: Tensor, gradient: Tensor) -> Tensor:
    """(B,) `value`, differentiable w.r.t. `inputs` (B, ...) with a gradient known in advance.

    For values computed without autograd whose gradients were computed with them: Sinkhorn
    values and their plans (the gradient w.r.t. the cost at the optimum), or distances whose
    gradient w.r.t. the points was formed eagerly. Only `gradient` is kept for the backward
    pass, which scales problem k's gradient by the incoming gradient of value k.

    Args:
        inputs: (B, ...) the tensor the values depend on.
        value: (B,) the values, without autograd history.
        gradient: (B, ...) shaped like `inputs`: the gradient of value k in its slice k.
    """
    return _EnvelopeValue.apply(inputs, value, gradient)


class _EnvelopeValue(torch.autograd.Function):
    """See `envelope_value`."""

    @staticmethod
    def forward(ctx, inputs: Tensor, value: Tensor, gradient: Tensor) -> Tensor:
        ctx.save_for_backward(gradient)
        return value.clone()

    @staticmethod
    def backward(ctx, grad_value: Tensor) -> tuple[Tensor, None, None]:
        (gradient,) = ctx.saved_tensors
        scale = grad_value.view(-1, *[1] * (gradient.dim() - 1))  # (B, 1, ...)
        return gradient * scale, None, None


def _weights(w: Tensor | None, cost: Tensor, dim: int) -> Tensor:
    """(B, size) weights: uniform when None, else `w` broadcast to the batch."""
    batch, size = cost.shape[0], cost.shape[dim]
    if w is None:
        return cost.new_full((batch, size), 1.0 / size)
    return w.to(cost.dtype).expand(batch, size)  # (B, size)


def _unbatch(result: SinkhornResult) -> SinkhornResult:
    fields = ("value", "f", "g", "plan", "cost")
    return dataclasses.replace(result, **{name: getattr(result, name)[0] for name in fields})


def _check_problem(cost, a, b, reg, max_iter, tol, scaling) -> None:
    """Raise a ValueError naming the argument when the problem is malformed."""
    if cost.dim() not in (2, 3) or 0 in cost.shape:
        shape = tuple(cost.shape)
        raise ValueError(f"cost must be a non-empty (n, m) or (B, n, m) tensor, got {shape}")
    if not cost.is_floating_point():
        raise TypeError(f"cost must be a float tensor, got dtype {cost.dtype}")
    if not torch.isfinite(cost).all():
        raise ValueError("cost contains NaN or infinite entries")
    for name, w, dim in (("a", a, -2), ("b", b, -1)):
        _check_weights(name, w, cost, dim)
    for name, value, low, high in (("reg", reg, 0, math.inf), ("scaling", scaling, 0, 1)):
        if not low < value < high:
            raise ValueError(f"{name} must be in ({low}, {high}), got {value!r}")
    if max_iter < 1 or tol < 0:
        raise ValueError(f"need max_iter >= 1 and tol >= 0, got max_iter={max_iter}, tol={tol}")


def _check_weights(name: str, w: Tensor | None, cost: Tensor, dim: int) -> None:
    if w is None:
        return
    expected = (*cost.shape[:-2], cost.shape[dim])
    if tuple(w.shape) not in (expected, expected[-1:]):
        raise ValueError(f"{name} must have shape {expected}, got {tuple(w.shape)}")
    total = w.sum(-1)
    if (w < 0).any() or not torch.allclose(total, torch.ones_like(total), atol=1e-4):
        raise ValueError(f"{name} must be non-negative and sum to 1, got sums {total.tolist()}")
