"""ListOps: evaluate nested list operations written as a token sequence.

Expressions follow the grammar of Nangia and Bowman (2018), as used in the Long Range Arena:
an expression is a digit or `[OP e1 ... ek ]` with OP one of MAX, MIN, MED (median, rounded
down) and SM (sum modulo 10). The label is the expression's value, 0-9. Tokens are one-hot
encoded along the channel axis; padding positions are all-zero columns.
"""

from __future__ import annotations

import functools
import logging

import numpy as np

from xmodal.data.catalog.common import cached_splits, scaled
from xmodal.data.splits import Splits
from xmodal.data.tasks import TaskDef, register_task

logger = logging.getLogger(__name__)

OPERATORS = {
    "[MAX": max,
    "[MIN": min,
    "[MED": lambda *args: int(np.median(args)),
    "[SM": lambda *args: sum(args) % 10,
}
VOCABULARY = [str(d) for d in range(10)] + list(OPERATORS) + ["]"]
TOKEN_ID = {token: i for i, token in enumerate(VOCABULARY)}
LENGTH = 128  # tokens per example, padded
MAX_DEPTH, MAX_ARGS = 5, 5
BRANCH_PROBABILITY = 0.35  # chance an argument is itself an expression


def random_expression(rng: np.random.Generator, depth: int = 0) -> tuple[list[str], int]:
    """A random expression's tokens and value; the root is always an operation."""
    if depth > 0 and (depth >= MAX_DEPTH or rng.random() > BRANCH_PROBABILITY):
        digit = int(rng.integers(10))
        return [str(digit)], digit
    operator = list(OPERATORS)[rng.integers(len(OPERATORS))]
    tokens, values = [operator], []
    for _ in range(int(rng.integers(2, MAX_ARGS + 1))):
        child_tokens, child_value = random_expression(rng, depth + 1)
        tokens += child_tokens
        values.append(child_value)
    return tokens + ["]"], int(OPERATORS[operator](*values))


def encode(tokens: list[str], length: int = LENGTH) -> np.ndarray:
    """One-hot (len(VOCABULARY), length) encoding, zero columns after the last token."""
    out = np.zeros((len(VOCABULARY), length), dtype=np.float32)
    out[[TOKEN_ID[t] for t in tokens], np.arange(len(tokens))] = 1.0
    return out


def generate_listops(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`n` expressions of 8 to LENGTH tokens: (n, 15, LENGTH) inputs and (n,) values."""
    rng = np.random.default_rng(seed)
    x, y = [], []
    while len(x) < n:
        tokens, value = random_expression(rng)
        if 8 <= len(tokens) <= LENGTH:  # short ones are too easy, long ones do not fit
            x.append(encode(tokens))
            y.append(value)
    return np.stack(x), np.asarray(y, dtype=np.int64)


def build_listops(n_train: int, n_test: int, seed: int) -> Splits:
    x, y = generate_listops(n_train + n_test, seed)
    return Splits(x_train=x[:n_train], y_train=y[:n_train], x_test=x[n_train:], y_test=y[n_train:])


def load_listops(scale: float, seed: int) -> Splits:
    """ListOps, 2000 train / 500 test expressions at scale 1."""
    n_train, n_test = scaled(2000, scale, minimum=10), scaled(500, scale, minimum=10)
    build = functools.partial(build_listops, n_train, n_test, seed)
    return cached_splits("listops", 1, {"n": [n_train, n_test], "seed": seed}, build)


register_task(
    TaskDef(
        name="listops",
        description="ListOps expressions (MAX/MIN/MED/SM over digits, nested up to depth 5)"
        " as one-hot tokens (N, 15, 128), zero-padded; 10 classes (the value);"
        " 2000 train / 500 test, generated.",
        family="logic",
        dims=1,
        task_type="classification",
        metric="error",
        loader=load_listops,
        source="generated (ListOps grammar, Nangia and Bowman 2018)",
    )
)
