"""Bach chorales as piano rolls: next-step prediction and melody harmonisation.

Chorales come from music21's bundled Bach corpus (offline). Each voice is sampled once per
quarter note, as in the JSB Chorales benchmark (Boulanger-Lewandowski et al. 2012): a key of
the 88-key piano (MIDI 21-108) is on at a step if a note sounds at that beat. Chorales, not
windows, are split into train and test, so no chorale appears in both. Two tasks:

- `chorales`: a window of past steps (all four voices) predicts the notes of the step that
  follows it (multi-label over 88 keys, NLL summed over keys).
- `chorale-harmony`: the soprano melody predicts, at every step of a window, the keys the
  alto, tenor and bass sound (dense multi-label over 88 keys).

`chorales` predicts the one step after the window, not the window shifted by one step (the
dense form of JSB Chorales): an encoder attends in both directions, so with shifted targets
every position but the last could read its answer from the next position of its own input,
and the task would measure copying. In `chorale-harmony` the input never holds the target
voices.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xmodal.data.catalog.common import cached_splits, scaled
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

LOWEST_KEY, N_KEYS = 21, 88  # MIDI number of A0; keys up to C8
WINDOW = 16  # steps (quarter notes) of context per `chorales` example: four 4/4 bars
STRIDE = 2
HARMONY_WINDOW = 32  # steps per `chorale-harmony` example: eight 4/4 bars
HARMONY_STRIDE = 4
N_CHORALES = 100  # parsed at scale 1 (about 10 s, then cached)
TEST_FRACTION = 0.2
CHORALE_FILE = re.compile(r"^bwv\d+(\.\d+)?\.mxl$")  # skips variants such as bwv18.5-w


def chorale_paths() -> list[Path]:
    """Sorted paths of the four-part chorales in music21's Bach corpus."""
    try:
        from music21 import corpus
    except ImportError as err:  # pragma: no cover - music21 is in the `tasks` extra
        raise ImportError("the chorales task needs music21: pip install 'xmodal[tasks]'") from err
    paths = [Path(p) for p in corpus.getComposer("bach")]
    return sorted(p for p in paths if CHORALE_FILE.match(p.name))


def voice_rolls(path: Path) -> np.ndarray | None:
    """A chorale's (4, 88, T) binary rolls, soprano first, or None if not four voices."""
    from music21 import converter

    score = converter.parse(str(path))
    if len(score.parts) != 4:
        return None
    n_steps = int(np.ceil(float(score.highestTime)))
    rolls = np.zeros((4, N_KEYS, n_steps), dtype=np.float32)
    for voice, part in enumerate(score.parts):
        for note in part.flatten().notes:
            start, end = float(note.offset), float(note.offset + note.quarterLength)
            steps = np.arange(int(np.ceil(start)), int(np.ceil(end)))  # beats it sounds on
            for pitch in note.pitches:
                key = pitch.midi - LOWEST_KEY
                if 0 <= key < N_KEYS:
                    rolls[voice, key, steps[steps < n_steps]] = 1.0
    return rolls


def windows(roll: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut an (88, T) roll into (n, 88, WINDOW) contexts and (n, 88) next-step targets."""
    starts = range(0, roll.shape[1] - WINDOW, STRIDE)  # each window leaves a step to predict
    x = [roll[:, s : s + WINDOW] for s in starts]
    y = [roll[:, s + WINDOW] for s in starts]
    if not x:
        return np.zeros((0, N_KEYS, WINDOW), np.float32), np.zeros((0, N_KEYS), np.float32)
    return np.stack(x), np.stack(y)


def harmony_windows(rolls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut (4, 88, T) voice rolls into (n, 88, HARMONY_WINDOW) soprano inputs and the lower
    voices' (n, 88, HARMONY_WINDOW) keys at the same steps."""
    melody, lower = rolls[0], rolls[1:].max(axis=0)
    starts = range(0, rolls.shape[2] - HARMONY_WINDOW + 1, HARMONY_STRIDE)
    x = [melody[:, s : s + HARMONY_WINDOW] for s in starts]
    y = [lower[:, s : s + HARMONY_WINDOW] for s in starts]
    if not x:
        empty = np.zeros((0, N_KEYS, HARMONY_WINDOW), np.float32)
        return empty, empty.copy()
    return np.stack(x), np.stack(y)


def build_chorales(
    n_chorales: int, seed: int, cut: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
) -> Splits:
    """Parse `n_chorales` seeded-random chorales, split them 80/20 into train/test and cut
    each one's (4, 88, T) voice rolls into examples with `cut`."""
    paths = chorale_paths()
    order = np.random.default_rng(seed).permutation(len(paths))
    chorales: list[np.ndarray] = []
    for i in order:
        rolls = voice_rolls(paths[i])
        if rolls is not None and rolls.shape[2] > max(WINDOW, HARMONY_WINDOW):
            chorales.append(rolls)
        if len(chorales) == n_chorales:
            break
    n_test = max(1, int(round(TEST_FRACTION * len(chorales))))
    parts = {"train": chorales[n_test:], "test": chorales[:n_test]}
    arrays = {}
    for part, members in parts.items():
        pairs = [cut(rolls) for rolls in members]
        arrays[f"x_{part}"] = np.concatenate([x for x, _ in pairs])
        arrays[f"y_{part}"] = np.concatenate([y for _, y in pairs]).astype(np.int64)  # 0/1
    logger.info("chorales: %d chorales, %d/%d examples", len(chorales),
                len(arrays["x_train"]), len(arrays["x_test"]))  # fmt: skip
    return Splits(**arrays)


def _all_voices(rolls: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return windows(rolls.max(axis=0))


def load_chorales(scale: float, seed: int) -> Splits:
    """Next-step windows of N_CHORALES * scale chorales (capped at the corpus size)."""
    n_chorales = scaled(N_CHORALES, scale, minimum=3)
    build = functools.partial(build_chorales, n_chorales, seed, _all_voices)
    params = {"n": n_chorales, "seed": seed, "window": WINDOW, "stride": STRIDE}
    return cached_splits("chorales", 2, params, build)


def load_chorale_harmony(scale: float, seed: int) -> Splits:
    """Melody-to-harmony windows of N_CHORALES * scale chorales (capped at the corpus size)."""
    n_chorales = scaled(N_CHORALES, scale, minimum=3)
    build = functools.partial(build_chorales, n_chorales, seed, harmony_windows)
    params = {"n": n_chorales, "seed": seed, "window": HARMONY_WINDOW, "stride": HARMONY_STRIDE}
    return cached_splits("chorale-harmony", 1, params, build)


register_task(
    TaskDef(
        name="chorales",
        description="Bach chorales (music21 corpus) as 88-key piano rolls at quarter-note"
        " steps; input 16 steps (N, 88, 16) in {0, 1}, target the notes of the step after"
        " them (N, 88); NLL summed over keys; 100 chorales split 80/20 by chorale, stride 2.",
        family="music",
        dims=1,
        task_type="multilabel",
        metric="nll",
        loader=load_chorales,
        source="music21.corpus (Bach chorales), after JSB Chorales",
    )
)
register_task(
    TaskDef(
        name="chorale-harmony",
        description="The `chorales` chorales, melody to harmony: input the soprano's 88-key"
        " roll over 32 steps (N, 88, 32), target at every step the keys sounded by alto,"
        " tenor and bass (N, 88, 32); NLL summed over keys, per step; stride 4.",
        family="music",
        dims=1,
        task_type="dense-multilabel",
        metric="nll",
        loader=load_chorale_harmony,
        source="music21.corpus (Bach chorales)",
    )
)
