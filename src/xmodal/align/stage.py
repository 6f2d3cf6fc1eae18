"""The alignment stage of ORCA: train the embedder alone to bring the target data close to
the source modality before fine-tuning.

The target inputs pass through the embedder and are mean-pooled over tokens; the source
points are a labeled proxy dataset of the body's modality seen through the body's own input
embeddings (`xmodal.align.proxy`). The embedder's weights move to minimise an alignment
objective between the two (OTDD by default, `xmodal.align.objectives`); the body and head do
not take part.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from xmodal.align.labels import target_labels
from xmodal.align.objectives import ObjectiveConfig, build_objective
from xmodal.align.proxy import source_features
from xmodal.bodies import cache_dir
from xmodal.config import Config, check_positive
from xmodal.data.arrays import TaskData
from xmodal.model.embedder import Embedder
from xmodal.model.network import CrossModalModel

logger = logging.getLogger(__name__)

# Stored source-only work of the default objectives on the packaged bodies' shipped source
# features (scripts/make_proxy_features.py writes it), so the default path never redoes it.
SHIPPED_WORK = Path(__file__).resolve().parents[1] / "resources" / "align"


@dataclasses.dataclass
class AlignConfig(Config):
    """Settings of the alignment stage (methods orca, orca-layernorm, orca-lora)."""

    steps: int = 100
    """Optimiser steps on the embedder."""
    lr: float = 1e-3
    """Learning rate of the embedder (Adam) during alignment."""
    decay_every: int = 40
    """Multiply the learning rate by `decay` every this many steps (step decay)."""
    decay: float = 0.5
    """Step-decay factor."""
    proxy: str = "default"
    """Source proxy data: "default" for the body's modality, a built-in proxy name or an
    .npz with `x` and `y`."""
    source_points: int = 5000
    """At most this many source points (class-balanced subsample)."""
    pseudo_labels: int = 10
    """k of the k-means pseudo-labels for targets that are not class ids."""
    cache_source_work: bool = True
    """Reuse stored results of the objective's source-only work (shipped with the package for
    the packaged bodies' defaults, or kept on disk in $XMODAL_CACHE/align by an earlier run
    with the same body, proxy and settings) and store new ones; False solves it every run."""
    objective: ObjectiveConfig = dataclasses.field(default_factory=ObjectiveConfig)
    """The distance minimised (OTDD variants, MMD or mean pairwise L2) and its settings."""

    def __post_init__(self) -> None:
        for name in ("steps", "lr", "decay_every", "decay", "source_points", "pseudo_labels"):
            check_positive(name, getattr(self, name))


def embed_targets(embedder: Embedder, x: torch.Tensor) -> torch.Tensor:
    """Target features (N, D): embedder tokens mean-pooled over the sequence."""
    return embedder(x).mean(dim=1)  # (N, T, D) -> (N, D)


def sample_per_class(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of up to `per_class` examples of every class."""
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return np.sort(np.concatenate(picks))


def align_embedder(
    model: CrossModalModel,
    data: TaskData,
    config: AlignConfig,
    seed: int = 0,
    folder: Path | None = None,
    progress: bool = False,
) -> dict:
    """Minimise the alignment objective over the embedder's weights.

    Returns a record for metrics.json: the objective before and after alignment (on a fixed
    sample of the training set), the number of source points, and the time taken; writes the
    per-step objective to `folder/alignment.json` when a folder is given.
    """
    start = time.perf_counter()
    embedder = model.embedder
    x = torch.from_numpy(data.splits.x_train)
    embedder.standardize.fit(x)
    labels = target_labels(data.splits.y_train, data.task_type, config.pseudo_labels, seed)
    source_x, source_y = source_features(model.body, config.proxy, config.source_points)
    reuse = config.cache_source_work
    objective = build_objective(
        config.objective, source_x.float(), source_y.long(),
        cache_dir=cache_dir() / "align" if reuse else None,
        read_only_dirs=[SHIPPED_WORK] if reuse else [],
    )  # fmt: skip
    n_source = len(source_x)
    del source_x, source_y  # the objective keeps what it needs; this halves resident memory

    rng = np.random.default_rng(seed)
    fixed = sample_per_class(labels, config.objective.points_per_class, rng)
    before = _objective_value(objective, embedder, x[fixed], labels[fixed])
    history = _optimise(embedder, objective, x, labels, config, rng, progress)
    after = _objective_value(objective, embedder, x[fixed], labels[fixed])
    logger.info("alignment: %s %.4f -> %.4f", config.objective.name, before, after)

    if folder is not None:
        (folder / "alignment.json").write_text(json.dumps({"objective": history}, indent=1))
    return {
        "otdd_before": before,
        "otdd_after": after,
        "align_objective": config.objective.name,
        "n_source": n_source,
        "seconds": time.perf_counter() - start,
    }


@torch.no_grad()
def _objective_value(objective, embedder: Embedder, x: torch.Tensor, y: np.ndarray) -> float:
    embedder.eval()
    return float(objective(embed_targets(embedder, x), torch.from_numpy(y)))


def _optimise(embedder, objective, x, labels, config: AlignConfig, rng, progress) -> list[float]:
    """Adam with step decay on the embedder's weights; returns the objective per step."""
    params = [p for p in embedder.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=config.lr)
    schedule = torch.optim.lr_scheduler.StepLR(optimizer, config.decay_every, config.decay)
    embedder.train()
    history = []
    for step in tqdm(range(config.steps), desc="alignment", disable=not progress, leave=False):
        idx = sample_per_class(labels, config.objective.points_per_class, rng)
        loss = objective(embed_targets(embedder, x[idx]), torch.from_numpy(labels[idx]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        history.append(float(loss.detach()))
        if step % max(1, config.steps // 10) == 0:
            logger.info("alignment step %d/%d  %s %.4f", step + 1, config.steps,
                        config.objective.name, history[-1])  # fmt: skip
    return history
