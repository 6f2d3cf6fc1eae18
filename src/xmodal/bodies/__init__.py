"""Pretrained transformer bodies: the middle of ORCA's embedder -> body -> head model.

`load_body(name)` gives a `Body` for a packaged short name (`body_names()`), a local model
folder or a Hugging Face hub id; `BODIES` holds the packaged `BodySpec`s.
"""

from xmodal.bodies.base import MODALITIES, Body, BodyInfo
from xmodal.bodies.catalog import BODIES, BodySpec, body_names, load_body
from xmodal.bodies.sources import BodyUnavailableError, cache_dir

__all__ = [
    "BODIES",
    "MODALITIES",
    "Body",
    "BodyInfo",
    "BodySpec",
    "BodyUnavailableError",
    "body_names",
    "cache_dir",
    "load_body",
]
