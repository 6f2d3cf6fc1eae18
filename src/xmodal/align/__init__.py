"""Alignment: optimal transport and other distances between target and source features.

`sinkhorn` solves batched entropic OT problems; `otdd` holds the optimal transport dataset
distance between labeled sets; `mmd` the kernel and energy discrepancies; `objectives` the
named alignment objectives (`OBJECTIVES`, `build_objective`) that the alignment stage
minimises over the embedder's weights.
"""

from xmodal.align.mmd import energy_distance, mmd
from xmodal.align.objectives import (
    OBJECTIVES,
    AlignmentObjective,
    ObjectiveConfig,
    build_objective,
    otdd,
)
from xmodal.align.otdd import LABEL_DISTANCES, OTDD, ClassGroups, SinkhornOptions, SourceCache
from xmodal.align.sinkhorn import SinkhornResult, sinkhorn, sinkhorn_divergence

__all__ = [
    "LABEL_DISTANCES",
    "OBJECTIVES",
    "OTDD",
    "AlignmentObjective",
    "ClassGroups",
    "ObjectiveConfig",
    "SinkhornOptions",
    "SinkhornResult",
    "SourceCache",
    "build_objective",
    "energy_distance",
    "mmd",
    "otdd",
    "sinkhorn",
    "sinkhorn_divergence",
]
