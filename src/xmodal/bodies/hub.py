"""Bodies outside the packaged set: a local model folder or a Hugging Face hub id.

A folder is loaded with `transformers.AutoModel`. A hub id is only tried after a short
connection check, because without network the hub client retries for half a minute before
failing; when the hub is unreachable (or HF_HUB_OFFLINE is set), a snapshot already in the
Hugging Face cache is used, or a `BodyUnavailableError` says how to load the model from a
folder instead.
"""

from __future__ import annotations

import logging
import os
import threading
import urllib.error
import urllib.request
from pathlib import Path

from transformers import PreTrainedModel

from xmodal.bodies.sources import BodyUnavailableError, model_from_folder

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 3.0  # seconds to wait for the hub before calling it unreachable
DEFAULT_ENDPOINT = "https://huggingface.co"
PATH_PREFIXES = ("/", "./", "../", "~", ".\\")


def load_named_model(name: str, pretrained: bool) -> tuple[PreTrainedModel, Path | None]:
    """Load `name` (a folder, else a hub id); also return the local folder it came from."""
    folder = Path(name).expanduser()
    if folder.is_dir():
        return model_from_folder(folder, pretrained), folder
    if name.startswith(PATH_PREFIXES):
        raise ValueError(f"body {name!r} looks like a path but no such folder exists")
    if not _offline() and hub_reachable():
        return _download(name, pretrained), None
    folder = _cached_folder(name)
    return model_from_folder(folder, pretrained), folder


def _download(repo_id: str, pretrained: bool) -> PreTrainedModel:
    try:
        return model_from_folder(repo_id, pretrained)
    except OSError as err:
        raise BodyUnavailableError(f"cannot load body {repo_id!r} from the hub: {err}") from err


def _cached_folder(repo_id: str) -> Path:
    """The Hugging Face cache's snapshot folder of `repo_id`, read without any network."""
    from huggingface_hub import try_to_load_from_cache

    try:
        config = try_to_load_from_cache(repo_id, "config.json")
    except ValueError as err:  # the id is malformed, e.g. has spaces or too many slashes
        raise ValueError(f"body {repo_id!r} is neither a folder nor a valid hub id: {err}") from err
    if not isinstance(config, str):
        raise BodyUnavailableError(_unreachable_message(repo_id))
    return Path(config).parent


def _unreachable_message(repo_id: str) -> str:
    return (
        f"body {repo_id!r} is not a packaged body or a local folder, and the Hugging Face hub "
        f"({hub_endpoint()}) cannot be reached from here (or HF_HUB_OFFLINE is set) and the "
        f"model is not in the Hugging Face cache. On a machine with internet run "
        f"`AutoModel.from_pretrained({repo_id!r}).save_pretrained(FOLDER)` (plus the tokenizer "
        f"for text models), copy FOLDER here and pass its path as the body name."
    )


def hub_endpoint() -> str:
    """The hub address the Hugging Face client would use."""
    return os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)


def hub_reachable(timeout: float = CONNECT_TIMEOUT_S) -> bool:
    """Whether the hub answers an HTTP request within `timeout` seconds.

    Any HTTP answer counts, even an error status; a bare TCP connection does not, since
    sandboxes may accept connections they never forward. The request runs in a daemon thread
    because name resolution has no timeout of its own.
    """
    result: list[bool] = []

    def ask() -> None:
        request = urllib.request.Request(hub_endpoint(), method="HEAD")
        try:
            urllib.request.urlopen(request, timeout=timeout).close()
            result.append(True)
        except urllib.error.HTTPError:
            result.append(True)
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=ask, daemon=True)
    thread.start()
    thread.join(timeout)
    return bool(result and result[0])


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
