"""Base class for xmodal's component configs.

Every component (data, model, alignment, fine-tuning) is configured by a typed dataclass
that inherits from `Config`: it round-trips through plain dicts, JSON and YAML, and rejects
unknown keys with the list of valid ones, so a typo in a config file fails loudly.
"""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

C = TypeVar("C", bound="Config")


@dataclasses.dataclass
class Config:
    """A dataclass with dict/JSON/YAML round trip and strict keys."""

    def to_dict(self) -> dict[str, Any]:
        """Return the config as a dict of plain Python values (nested configs become dicts)."""
        out = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            out[field.name] = value.to_dict() if isinstance(value, Config) else _plain(value)
        return out

    @classmethod
    def from_dict(cls: type[C], data: dict[str, Any] | None) -> C:
        """Build a config from a dict, rejecting keys that are not fields of `cls`."""
        data = dict(data or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(
                f"unknown key(s) {unknown} for {cls.__name__}; valid keys are {sorted(names)}"
            )
        hints = typing.get_type_hints(cls)
        for name, value in data.items():
            sub = _config_type(hints.get(name))
            if sub is not None and isinstance(value, dict):
                data[name] = sub.from_dict(value)
        return cls(**data)

    def replace(self: C, **changes: Any) -> C:
        """Return a copy with `changes` applied (and checked again by `__post_init__`)."""
        return self.from_dict({**self.to_dict(), **changes})

    def to_yaml(self, path: str | Path | None = None) -> str:
        """Serialise to YAML; also write it to `path` when given."""
        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        if path is not None:
            Path(path).write_text(text)
        return text

    @classmethod
    def from_yaml(cls: type[C], path_or_text: str | Path) -> C:
        """Read a config from a YAML (or JSON) file path or string."""
        path = Path(path_or_text)
        is_file = isinstance(path_or_text, Path) or (
            len(str(path_or_text)) < 4096 and path.is_file()
        )
        text = path.read_text() if is_file else str(path_or_text)
        return cls.from_dict(yaml.safe_load(text))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, Path):
        return str(value)
    return value


def _config_type(hint: Any) -> type[Config] | None:
    """Return the Config subclass named by a type hint (also inside Optional), if any."""
    candidates = typing.get_args(hint) or (hint,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, Config):
            return candidate
    return None


def check_choice(name: str, value: Any, allowed: typing.Iterable[Any]) -> None:
    """Raise a ValueError naming `name` when `value` is not one of `allowed`."""
    allowed = list(allowed)
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; choose one of {allowed}")


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Raise a ValueError naming `name` when `value` is not > 0 (or >= 0)."""
    ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be {bound}, got {value!r}")


def field_docs(cls: type) -> dict[str, str]:
    """The docstring written under each field of dataclass `cls` (used as CLI help)."""
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    except (OSError, TypeError):
        return {}
    body = tree.body[0].body
    docs = {}
    for field, after in zip(body, body[1:]):
        if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
            if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant):
                docs[field.target.id] = " ".join(str(after.value.value).split())
    return docs
