"""Alignment objectives: distances from embedded target data to the source set, by name.

The alignment stage moves the embedder to bring the target features close to the source
(proxy) features. `OBJECTIVES` maps each objective's name to its class; `build_objective`
makes one from an `ObjectiveConfig` and the source set, doing all source-only work once.
"""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

from xmodal.align.mmd import (
    blockwise_mean,
    gaussian_kernel_mean,
    mean_distance,
    mean_squared_distance,
)
from xmodal.align.otdd import (
    LABEL_DISTANCES,
    OTDD,
    ClassGroups,
    SinkhornOptions,
    SourceCache,
    SourceTermsError,
    class_index,
)
from xmodal.config import Config, check_choice, check_positive
from xmodal.registry import Registry

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class ObjectiveConfig(Config):
    """Which alignment objective to minimise, and its settings."""

    name: str = "otdd-classwise"
    """Objective: "otdd-classwise" (OTDD of each target class to the source, ORCA's
    Algorithm 1), "otdd" (OTDD of the whole target set), "otdd-orca" (the per-class variant of
    the original ORCA code), "mmd" (kernel discrepancy) or "l2" (energy distance)."""
    reg: float = 0.1
    """Entropic regularisation of every Sinkhorn problem, in squared feature units."""
    inner: str = "exact"
    """Label-to-label distances: "exact" (entropic OT between the points of two classes) or
    "gaussian" (closed form between the classes' means and covariances)."""
    detach_label_cost: bool = False
    """Pass no gradient through the label-to-label distances."""
    debias: bool = True
    """Subtract the self terms (Sinkhorn divergence) in the outer problem and in the exact
    label distances, so that a set is at distance 0 from itself."""
    max_iter: int = 100
    """Most Sinkhorn iterations at the final `reg`, after the annealing."""
    tol: float = 1e-2
    """Sinkhorn stops once the L1 error of the marginals is below this."""
    scaling: float = 0.5
    """Annealing: ratio between successive regularisations, in (0, 1)."""
    warm_start: bool = True
    """Start each call's Sinkhorn problems from the previous call's source-side potentials."""
    points_per_class: int = 128
    """b: target points per class (per round) in the class-wise OTDD variants."""
    rounds: int = 1
    """R: rounds of per-class subsampling averaged by "otdd-classwise"."""
    seed: int = 0
    """Seed of the per-class subsampling."""
    chunk_mb: float | None = None
    """Memory for the work buffers of the class-wise OTDD objectives, in MiB: target classes
    are solved a few at a time so that their (points x source points) matrices, about 4 per
    class, fit in it (one class at a time at least). None: the size of the source features."""
    mmd_bandwidths: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
    """Widths of the Gaussian kernels of "mmd", as multiples of the mean squared distance
    between source points."""

    def __post_init__(self) -> None:
        check_choice("name", self.name, OBJECTIVES.names())
        check_choice("inner", self.inner, LABEL_DISTANCES.names())
        for name in ("reg", "max_iter", "points_per_class", "rounds"):
            check_positive(name, getattr(self, name))
        if self.chunk_mb is not None:
            check_positive("chunk_mb", self.chunk_mb)
        check_positive("tol", self.tol, allow_zero=True)
        if not 0 < self.scaling < 1:
            raise ValueError(f"scaling must be in (0, 1), got {self.scaling!r}")
        self.mmd_bandwidths = tuple(float(width) for width in self.mmd_bandwidths)
        if not self.mmd_bandwidths or min(self.mmd_bandwidths) <= 0:
            raise ValueError(f"mmd_bandwidths must be positive numbers, got {self.mmd_bandwidths}")

    def sinkhorn_options(self) -> SinkhornOptions:
        return SinkhornOptions(self.reg, self.max_iter, self.tol, self.scaling)

    def chunk_bytes(self) -> int | None:
        """`chunk_mb` in bytes, or None for the size of the source features."""
        return None if self.chunk_mb is None else int(self.chunk_mb * 2**20)


class AlignmentObjective(abc.ABC):
    """A distance from target points to a fixed labeled source set.

    Call it as ``objective(target_x, target_y)`` with target_x (n_t, d) float features and
    target_y (n_t,) integer labels of any values; it returns a 0-d tensor, differentiable with
    respect to target_x. `cache` holds the work on the source alone, done once at
    construction and never per call; its results (without the source points) are
    `source_terms()`, which a later construction can adopt as `terms` instead of redoing it.

    Args:
        config: the objective's settings.
        source_x: (n_s, d) float source features; the target must match their width and dtype.
        source_y: (n_s,) integer source labels.
        terms: `source_terms()` of an earlier objective with the same source and
            `source_fields` settings, or None to do the source-only work.
    """

    # The ObjectiveConfig fields that the source-only work depends on.
    source_fields: tuple[str, ...] = ()

    def __init__(
        self,
        config: ObjectiveConfig,
        source_x: Tensor,
        source_y: Tensor,
        terms: dict[str, Tensor] | None = None,
    ) -> None:
        check_labeled_points("source", source_x, source_y)
        self.config = config
        self.width, self.dtype, self.device = source_x.shape[1], source_x.dtype, source_x.device
        self.cache = self.build_cache(source_x.detach(), source_y, terms)

    def __call__(self, target_x: Tensor, target_y: Tensor) -> Tensor:
        check_labeled_points("target", target_x, target_y)
        if target_x.shape[1] != self.width:
            raise ValueError(
                f"target_x has {target_x.shape[1]} features per point but the source has "
                f"{self.width}; the embedder must output the body's width"
            )
        if target_x.dtype != self.dtype:
            raise TypeError(
                f"target_x has dtype {target_x.dtype} but the source features are {self.dtype}; "
                "build the objective from source features of the target's dtype"
            )
        if target_x.device != self.device or target_y.device != self.device:
            raise ValueError(
                f"target_x and target_y must be on {self.device} like the source features, "
                f"got {target_x.device} and {target_y.device}"
            )
        return self.distance(target_x, target_y)

    @abc.abstractmethod
    def build_cache(
        self, source_x: Tensor, source_y: Tensor, terms: dict[str, Tensor] | None = None
    ) -> Any:
        """Do the source-only work (or adopt its stored `terms`); it becomes `self.cache`."""

    @abc.abstractmethod
    def source_terms(self) -> dict[str, Tensor]:
        """The results of the source-only work, without the source points (small tensors)."""

    @abc.abstractmethod
    def distance(self, target_x: Tensor, target_y: Tensor) -> Tensor:
        """() the objective for checked target points and labels."""


OBJECTIVES: Registry[type[AlignmentObjective]] = Registry("alignment objective")


def build_objective(
    config: ObjectiveConfig,
    source_x: Tensor,
    source_y: Tensor,
    cache_dir: Path | None = None,
    read_only_dirs: Sequence[Path] = (),
) -> AlignmentObjective:
    """The objective named by `config.name`, with its source-only work done.

    With `cache_dir`, the results of the source-only work are stored there (a small
    safetensors file) under a key made of the source points, labels and the settings that
    work depends on, and read back by later calls instead of being recomputed.
    `read_only_dirs` are searched first for such files and never written (the package ships
    them for its packaged bodies' default source features).

    Example:
        >>> objective = build_objective(ObjectiveConfig(), source_x, source_y)
        >>> loss = objective(embedder_features, target_labels)  # () tensor
        >>> loss.backward()
    """
    objective_type = OBJECTIVES.get(config.name)
    name = source_work_name(config, source_x, source_y)
    folders = [*read_only_dirs, *([cache_dir] if cache_dir is not None else [])]
    terms = _read_terms([Path(folder) / name for folder in folders])
    try:
        objective = objective_type(config, source_x, source_y, terms)
    except (SourceTermsError, KeyError) as error:  # a stale or foreign file: redo the work
        logger.warning("stored source work %s does not fit (%s): computing it again", name, error)
        terms = None
        objective = objective_type(config, source_x, source_y, terms)
    if cache_dir is not None and terms is None:
        _write_terms(Path(cache_dir) / name, objective.source_terms())
    return objective


def source_work_name(config: ObjectiveConfig, source_x: Tensor, source_y: Tensor) -> str:
    """File name of the stored source-only work: the objective and a digest of its inputs.

    The digest covers the source points and labels and the config fields the work depends
    on (`source_fields` of the objective), so changing e.g. `points_per_class` reuses it.
    """
    fields = OBJECTIVES.get(config.name).source_fields
    settings = {field: getattr(config, field) for field in fields}
    digest = hashlib.sha1(json.dumps({"name": config.name, **settings}, sort_keys=True).encode())
    for tensor in (source_x, source_y):
        digest.update(str((tensor.dtype, tuple(tensor.shape))).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy())  # its buffer, not a copy
    return f"{config.name}-{digest.hexdigest()[:16]}.safetensors"


def _read_terms(paths: list[Path]) -> dict[str, Tensor] | None:
    """The source terms in the first readable file of `paths`, or None."""
    for path in paths:
        if not path.is_file():
            continue
        try:
            terms = load_file(path)
        except (OSError, SafetensorError) as error:
            logger.warning("unreadable source-work file %s (%s): computing it again", path, error)
            continue
        logger.debug("source-only work read from %s", path)
        return terms
    return None


def _write_terms(path: Path, terms: dict[str, Tensor]) -> None:
    """Store `terms` at `path` atomically: concurrent runs never read half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial_file = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({key: value.contiguous() for key, value in terms.items()}, partial_file)
    partial_file.replace(path)


def otdd(
    source_x: Tensor,
    source_y: Tensor,
    target_x: Tensor,
    target_y: Tensor,
    reg: float = 0.1,
    inner: str = "exact",
    debias: bool = True,
    **options: Any,
) -> Tensor:
    r"""OTDD between two labeled point sets, in one call (see `xmodal.align.otdd.OTDD`).

    .. math::
        \mathrm{OTDD} = \mathrm{OT}_\varepsilon(D_t, D_s)
            - \tfrac12 \mathrm{OT}_\varepsilon(D_t, D_t)
            - \tfrac12 \mathrm{OT}_\varepsilon(D_s, D_s)

    under the ground cost :math:`\|x - x'\|^2 + W(y, y')`, W the label-to-label distance.

    Args:
        source_x: (n_s, d) float features; source_y: (n_s,) integer labels.
        target_x: (n_t, d) float features; target_y: (n_t,) integer labels.
        reg: entropic regularisation, in squared feature units.
        inner: label distances, "exact" or "gaussian".
        debias: subtract the self terms (the last two above).
        **options: other `ObjectiveConfig` fields (max_iter, tol, scaling, ...).

    Returns:
        () the distance, differentiable with respect to target_x.

    Reference:
        D. Alvarez-Melis and N. Fusi. Geometric dataset distances via optimal transport.
        NeurIPS 2020.

    Example:
        >>> otdd(x, y, x + 0.5, y)  # grows with the shift
    """
    config = ObjectiveConfig(
        name="otdd", reg=reg, inner=inner, debias=debias, warm_start=False, **options
    )
    return build_objective(config, source_x, source_y)(target_x, target_y)


# --------------------------------------------------------------------------- OTDD objectives

SELECTIONS: Registry = Registry("target selection")


@SELECTIONS.register("all")
def _all_points(classes: Tensor, n_classes: int, config: ObjectiveConfig, generator) -> tuple:
    """Every point of every class, one group per class."""
    order = torch.arange(len(classes), device=classes.device)
    return class_index(classes, n_classes, order, None), order.new_tensor(range(n_classes))


@SELECTIONS.register("first")
def _first_points(classes: Tensor, n_classes: int, config: ObjectiveConfig, generator) -> tuple:
    """The first b points of each class, in the order given (as a data loader yields them)."""
    order = torch.arange(len(classes), device=classes.device)
    index = class_index(classes, n_classes, order, config.points_per_class)
    return index, order.new_tensor(range(n_classes))


@SELECTIONS.register("random")
def _random_points(classes: Tensor, n_classes: int, config: ObjectiveConfig, generator) -> tuple:
    """R rounds of b points per class drawn without replacement; one round if no class has more.

    Each round ranks all points by one random permutation, whatever their labels, so renaming
    the classes changes nothing.
    """
    b = config.points_per_class
    rounds = config.rounds if int(torch.bincount(classes).max()) > b else 1
    orders = [torch.randperm(len(classes), generator=generator) for _ in range(rounds)]
    tables = [class_index(classes, n_classes, order.to(classes.device), b) for order in orders]
    group_classes = torch.arange(n_classes, device=classes.device).repeat(rounds)  # (R K,)
    return torch.cat(tables), group_classes  # (R K, b) point indices, -1 padding


class _OTDDObjective(AlignmentObjective):
    """Shared set-up of the OTDD objectives: an `OTDD` whose source cache is `cache`."""

    feature_scale = 1.0
    label_weight = 1.0
    source_fields = ("reg", "inner", "debias", "max_iter", "tol", "scaling")

    def build_cache(
        self, source_x: Tensor, source_y: Tensor, terms: dict[str, Tensor] | None = None
    ) -> SourceCache:
        self.otdd = OTDD(
            source_x,
            source_y,
            self.config.sinkhorn_options(),
            inner=self.config.inner,
            debias=self.config.debias,
            feature_scale=self.feature_scale,
            label_weight=self.label_weight,
            detach_label_cost=self.config.detach_label_cost,
            warm_start=self.config.warm_start,
            chunk_bytes=self.config.chunk_bytes(),
            source_terms=terms,
        )
        return self.otdd.cache

    def source_terms(self) -> dict[str, Tensor]:
        return self.cache.terms()


@OBJECTIVES.register("otdd")
class WholeOTDD(_OTDDObjective):
    """OTDD between the whole target set (all points, all labels) and the source set."""

    def distance(self, target_x: Tensor, target_y: Tensor) -> Tensor:
        labels, classes = torch.unique(target_y, return_inverse=True)
        index, group_classes = SELECTIONS.get("all")(classes, len(labels), self.config, None)
        groups = ClassGroups.gather(target_x, index, group_classes)
        return self.otdd.whole(groups, labels.tolist())


@OBJECTIVES.register("otdd-classwise")
class ClasswiseOTDD(_OTDDObjective):
    r"""Class-wise OTDD (ORCA's Algorithm 1): each target class against the whole source.

    .. math::
        \sum_{c} \frac{n_c}{n_t} \frac{1}{R} \sum_{r=1}^{R}
            \mathrm{OTDD}\big(\{(x_i, c) : i \in B_{c,r}\}, D_s\big)

    with :math:`B_{c,r}` a random subset of b = `points_per_class` points of class c drawn at
    round r, and :math:`n_c / n_t` the class's frequency in the target. All classes and rounds
    are solved as one batch.
    """

    selection = "random"
    min_class_size = 1  # classes with fewer target points are left out

    def __init__(
        self,
        config: ObjectiveConfig,
        source_x: Tensor,
        source_y: Tensor,
        terms: dict[str, Tensor] | None = None,
    ) -> None:
        super().__init__(config, source_x, source_y, terms)
        self.generator = torch.Generator().manual_seed(config.seed)

    def distance(self, target_x: Tensor, target_y: Tensor) -> Tensor:
        labels, classes = torch.unique(target_y, return_inverse=True)
        select = SELECTIONS.get(self.selection)
        index, group_classes = select(classes, len(labels), self.config, self.generator)
        counts = torch.bincount(classes)  # (K,)
        keep = counts[group_classes] >= self.min_class_size  # (R K,)
        if not keep.any():
            return self._nothing_to_compare(target_x)

        kept = group_classes[keep]  # (G,)
        groups = ClassGroups.gather(target_x, index[keep], kept)
        rounds = len(group_classes) // len(labels)
        weights = counts[kept].to(target_x.dtype) / (len(target_y) * rounds)  # (G,)
        return (weights * self.otdd.per_group(groups, labels[kept].tolist())).sum()

    def _nothing_to_compare(self, target_x: Tensor) -> Tensor:
        logger.warning(
            "%s: no target class has %d or more points; the objective is 0",
            self.config.name, self.min_class_size,
        )  # fmt: skip
        return target_x.sum() * 0.0


@OBJECTIVES.register("otdd-orca")
class OrcaOTDD(ClasswiseOTDD):
    """The class-wise OTDD that the original ORCA code computes, for comparison with it.

    Each target class (its first b points, in order) gets a single label and is compared with
    the whole labeled source; classes with a single point are skipped; the class terms are
    weighted by class frequency. Costs follow the code's convention for squared distances:
    ||x - x'||^2 / 2 in the outer and inner problems, and the label distance halved as well.
    """

    selection = "first"
    min_class_size = 2
    feature_scale = 0.5
    label_weight = 0.5


# ----------------------------------------------------------------- kernel and distance objectives


@dataclasses.dataclass
class DiscrepancyCache:
    """Source-only terms of a discrepancy objective.

    Attributes:
        x: (n_s, d) the source features.
        self_term: () the source's mean kernel (or distance) with itself.
        bandwidths: the kernel widths in squared feature units (empty for distances).
    """

    x: Tensor
    self_term: Tensor
    bandwidths: tuple[float, ...] = ()


@OBJECTIVES.register("mmd")
class MMDObjective(AlignmentObjective):
    """Squared MMD with a sum of Gaussian kernels (see `mmd.mmd`); labels are not used.

    The kernel widths are `mmd_bandwidths` times the mean squared distance between source
    points, fixed at construction so that the source term can be cached.
    """

    source_fields = ("mmd_bandwidths",)

    def build_cache(
        self, source_x: Tensor, source_y: Tensor, terms: dict[str, Tensor] | None = None
    ) -> DiscrepancyCache:
        if terms is not None:
            widths = tuple(terms["bandwidths"].tolist())
            return DiscrepancyCache(source_x, terms["self_term"].to(source_x), widths)
        spread = float(mean_squared_distance(source_x)) if len(source_x) > 1 else 0.0
        widths = tuple(width * (spread or 1.0) for width in self.config.mmd_bandwidths)
        kernel = partial(gaussian_kernel_mean, bandwidths=widths)
        return DiscrepancyCache(source_x, blockwise_mean(kernel, source_x, source_x), widths)

    def source_terms(self) -> dict[str, Tensor]:
        widths = torch.tensor(self.cache.bandwidths, dtype=torch.float64)
        return {"self_term": self.cache.self_term, "bandwidths": widths}

    def distance(self, target_x: Tensor, target_y: Tensor) -> Tensor:
        source, widths = self.cache.x, self.cache.bandwidths
        cross = gaussian_kernel_mean(target_x, source, widths)
        return gaussian_kernel_mean(target_x, target_x, widths) + self.cache.self_term - 2 * cross


@OBJECTIVES.register("l2")
class EnergyObjective(AlignmentObjective):
    """Mean pairwise L2 distance to the source, debiased: the energy distance (`mmd.py`).

    Labels are not used. Zero for equal sets, positive between different distributions.
    """

    def build_cache(
        self, source_x: Tensor, source_y: Tensor, terms: dict[str, Tensor] | None = None
    ) -> DiscrepancyCache:
        if terms is not None:
            return DiscrepancyCache(source_x, terms["self_term"].to(source_x))
        return DiscrepancyCache(source_x, blockwise_mean(mean_distance, source_x, source_x))

    def source_terms(self) -> dict[str, Tensor]:
        return {"self_term": self.cache.self_term}

    def distance(self, target_x: Tensor, target_y: Tensor) -> Tensor:
        cross = mean_distance(target_x, self.cache.x)
        return 2 * cross - mean_distance(target_x, target_x) - self.cache.self_term


# --------------------------------------------------------------------------- input checks


def check_labeled_points(name: str, x: Any, y: Any) -> None:
    """Raise a TypeError or ValueError naming `{name}_x` / `{name}_y` when they are unusable.

    x must be a non-empty (n, d) float tensor without NaN or infinity, y an (n,) integer tensor.
    """
    if not isinstance(x, Tensor) or not isinstance(y, Tensor):
        kinds = f"{type(x).__name__} and {type(y).__name__}"
        raise TypeError(f"{name}_x and {name}_y must be torch tensors, got {kinds}")
    if x.dim() != 2 or 0 in x.shape:
        raise ValueError(f"{name}_x must be a non-empty (n, d) tensor, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name}_x must be a float tensor, got dtype {x.dtype}")
    if y.shape != x.shape[:1] or y.is_floating_point() or y.is_complex():
        raise ValueError(
            f"{name}_y must be an integer tensor of shape ({len(x)},) like {name}_x's rows, "
            f"got dtype {y.dtype} and shape {tuple(y.shape)}"
        )
    if not torch.isfinite(torch.stack(torch.aminmax(x))).all():  # NaN propagates; no copy of x
        raise ValueError(f"{name}_x contains NaN or infinite values")
