"""Source features for the alignment stage: a labeled proxy dataset seen through the body.

ORCA aligns the embedded target data with labeled data of the body's own (source) modality.
Here a source point is one proxy example passed through the body's own input embeddings and
mean-pooled over its tokens, giving features (n, D) and integer labels (n,). Packaged bodies
ship these features for their default proxy; other bodies compute them once from a built-in
proxy (WordNet definitions, Fashion-MNIST, a synthetic set) or a user `.npz` and cache them.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.resources
import logging
import os
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from xmodal.bodies import BODIES, Body, cache_dir
from xmodal.registry import Registry

logger = logging.getLogger(__name__)

DEFAULT = "default"
MAX_POINTS = 5000
PER_CLASS = 500
BATCH = 128  # texts per forward pass
IMAGE_BATCH = 32  # images are upsampled to the body's size, so fewer at a time
MAX_TEXT_TOKENS = 64  # definitions are short; longer ones are truncated
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
WORDNET_DIR = Path("/usr/share/wordnet")
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# Ten frequent WordNet noun lexicographer files (file number -> name), one class each.
WORDNET_CLASSES = {
    4: "noun.act",
    5: "noun.animal",
    6: "noun.artifact",
    7: "noun.attribute",
    10: "noun.communication",
    15: "noun.location",
    18: "noun.person",
    20: "noun.plant",
    26: "noun.state",
    27: "noun.substance",
}
DEFAULT_BY_MODALITY = {"text": "wordnet", "vision": "fashion-mnist"}


@dataclasses.dataclass(frozen=True)
class ProxyData:
    """Raw proxy examples before the body sees them."""

    x: np.ndarray  # strings or token ids (n, T) for text, images (n, H, W) or (n, C, H, W)
    y: np.ndarray  # (n,) integer labels
    classes: tuple[str, ...] = ()  # label names, when known


@dataclasses.dataclass(frozen=True)
class ProxySpec:
    """A built-in proxy dataset: which modality it serves and how to read it."""

    name: str
    modalities: tuple[str, ...]
    description: str
    reader: Callable[[Body, int], ProxyData]  # (body, seed) -> examples


PROXIES: Registry[ProxySpec] = Registry("proxy dataset")


def source_features(
    body: Body, proxy: str | Path = DEFAULT, max_points: int = MAX_POINTS, *, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Labeled source features of `body`: proxy examples embedded and mean-pooled.

    Args:
        body: the body whose input embeddings define the source feature space.
        proxy: "default" (the body's usual proxy), a built-in proxy name (`PROXIES`), or the
            path of an `.npz` with `x` (strings, token ids or images) and `y` (integer labels).
        max_points: keep at most this many examples, drawn with `seed`.

    Returns:
        features (n, D) float32 and labels (n,) int64, n <= max_points.

    Raises:
        ValueError: the body's modality has no default proxy, or the proxy is unknown.
    """
    if not isinstance(max_points, int) or max_points < 1:
        raise ValueError(f"max_points must be a positive integer, got {max_points!r}")
    name = _resolve(body, proxy)
    shipped = _shipped_file(body, name)
    if shipped is not None:
        features, labels = _read_npz(shipped)
    else:
        features, labels = _cached(body, name, max_points, seed)
    features, labels = _subsample(features, labels, max_points, seed)
    return torch.from_numpy(features.astype(np.float32)), torch.from_numpy(labels.astype(np.int64))


def _resolve(body: Body, proxy: str | Path) -> str:
    """Turn "default" into a proxy name; check names and paths."""
    if isinstance(proxy, Path) or str(proxy).endswith(".npz") or Path(str(proxy)).is_file():
        path = Path(proxy).expanduser()
        if not path.is_file():
            raise ValueError(f"proxy={str(proxy)!r}: no such .npz file")
        return str(path.resolve())
    if not isinstance(proxy, str):
        raise TypeError(f"proxy must be a name or a path, got {type(proxy).__name__}")
    if proxy == DEFAULT:
        return _default_proxy(body)
    spec = PROXIES.get(proxy)
    if body.info.modality not in spec.modalities:
        raise ValueError(
            f"proxy={proxy!r} serves {spec.modalities} bodies, not the "
            f"{body.info.modality} body {body.info.name!r}"
        )
    return proxy


def _default_proxy(body: Body) -> str:
    info = body.info
    name = BODIES.get(info.name).proxy if info.name in BODIES else None
    name = name or DEFAULT_BY_MODALITY.get(info.modality)
    if name is None:
        raise ValueError(
            f"the {info.modality} body {info.name!r} has no default proxy dataset; pass "
            "--align-proxy PATH (proxy= in the API) to an .npz with `x` (sequences as "
            "strings or token ids) and `y` (integer labels), or a built-in proxy: "
            f"{', '.join(PROXIES.names())}"
        )
    return name


def _shipped_file(body: Body, name: str) -> Path | None:
    """The features shipped with xmodal for a trained packaged body, if any."""
    info = body.info
    if not info.pretrained or info.name not in BODIES or name not in PROXIES:
        return None
    path = shipped_path(info.name, name)
    return path if path.is_file() else None


def shipped_path(body_name: str, proxy_name: str) -> Path:
    """Where the shipped features of `body_name` on `proxy_name` live in the package."""
    root = importlib.resources.files("xmodal") / "resources" / "proxy"
    return Path(str(root / f"{body_name}-{proxy_name}.npz"))


def _cached(body: Body, name: str, max_points: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Features from the disk cache, computed and stored on the first call."""
    path = cache_dir() / "proxy" / f"{_cache_key(body, name)}-n{max_points}-s{seed}.npz"
    if path.is_file():
        logger.debug("proxy features from cache %s", path)
        return _read_npz(path)
    data = _subsample_data(read_proxy(body, name, seed), max_points, seed)
    features = embed_proxy(body, data)
    _save_atomic(path, features, data)
    logger.info("computed %d proxy features for %s into %s", len(features), body.info.name, path)
    return features, data.y


def _save_atomic(path: Path, features: np.ndarray, data: ProxyData) -> None:
    """Write to a temporary name first so that a concurrent reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
    save_features(partial, features, data.y, data.classes, dtype=np.float32)
    os.replace(partial, path)


def _cache_key(body: Body, name: str) -> str:
    """A file-name-safe key for (body, its embedding weights, proxy or proxy file content).

    The weights' digest keeps two random (scratch) initialisations of a body apart.
    """
    weights = hashlib.sha1()
    for tensor in body.input_embeddings.state_dict().values():
        weights.update(tensor.detach().cpu().contiguous().numpy())  # its buffer, not a copy
    body_part = f"{_safe(body.info.name)}-{weights.hexdigest()[:10]}"
    if name in PROXIES:
        return f"{body_part}-{name}"
    digest = hashlib.sha1(Path(name).read_bytes()).hexdigest()[:12]
    return f"{body_part}-{_safe(Path(name).stem)}-{digest}"


def _safe(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[-48:]
    if cleaned == text:
        return cleaned
    return f"{cleaned}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def read_proxy(body: Body, name: str, seed: int = 0) -> ProxyData:
    """The raw examples of a built-in proxy or of an `.npz` file."""
    if name in PROXIES:
        return PROXIES.get(name).reader(body, seed)
    with np.load(name, allow_pickle=False) as archive:
        missing = {"x", "y"} - set(archive.files)
        if missing:
            raise ValueError(f"proxy file {name} lacks {sorted(missing)}; it needs `x` and `y`")
        return ProxyData(x=archive["x"], y=archive["y"].astype(np.int64))


def save_features(
    path: Path, features: np.ndarray, labels: np.ndarray, classes: tuple[str, ...], dtype: type
) -> None:
    """Write features (n, D) as `dtype`, labels (n,) and class names to a compressed `.npz`."""
    np.savez_compressed(
        path,
        features=features.astype(dtype),
        labels=labels.astype(np.int16),
        classes=np.array(classes, dtype=str),
    )


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as archive:
        return archive["features"], archive["labels"].astype(np.int64)


def _subsample(
    features: np.ndarray, labels: np.ndarray, max_points: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    if len(labels) <= max_points:
        return features, labels
    keep = np.sort(np.random.default_rng(seed).permutation(len(labels))[:max_points])
    return features[keep], labels[keep]


def _subsample_data(data: ProxyData, max_points: int, seed: int) -> ProxyData:
    x, y = _subsample(data.x, data.y, max_points, seed)
    return ProxyData(x=x, y=y, classes=data.classes)


# --- embedding proxy examples with the body's own input layer -------------------------------


def embed_proxy(body: Body, data: ProxyData) -> np.ndarray:
    """Mean-pooled input embeddings (n, D) of the proxy examples, by the body's modality."""
    if body.info.modality not in EMBEDDERS:
        raise NotImplementedError(
            f"no proxy embedding for {body.info.modality} bodies; supported: {', '.join(EMBEDDERS)}"
        )
    with torch.no_grad():
        return EMBEDDERS[body.info.modality](body, data.x)


def _embed_text(body: Body, x: np.ndarray) -> np.ndarray:
    """Token embeddings (positions and layer norm included) averaged over real tokens."""
    if x.dtype.kind in "US":
        ids, mask = _tokenize(body, [str(text) for text in x])
    elif x.dtype.kind in "iu" and x.ndim == 2:
        ids = torch.from_numpy(x.astype(np.int64))
        mask = ids != (getattr(body.hf_model.config, "pad_token_id", None) or 0)
    else:
        raise ValueError(
            f"text proxy x must be strings or token ids (n, T); got {x.dtype} {x.shape}"
        )
    chunks = [
        _masked_mean(body.input_embeddings(input_ids=ids[i : i + BATCH]), mask[i : i + BATCH])
        for i in range(0, len(ids), BATCH)
    ]
    return torch.cat(chunks).numpy()


def _tokenize(body: Body, texts: list[str]) -> tuple[Tensor, Tensor]:
    from transformers import AutoTokenizer

    source = body.info.folder or (None if body.info.name in BODIES else body.info.name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source) if source else None
    except (OSError, ValueError):
        tokenizer = None
    if tokenizer is None:
        raise ValueError(
            f"body {body.info.name!r} has no tokenizer files; give the proxy's x as token "
            "ids, an integer array (n, T) padded with the pad id"
        )
    batch = tokenizer(
        texts, padding=True, truncation=True, max_length=MAX_TEXT_TOKENS, return_tensors="pt"
    )
    return batch["input_ids"], batch["attention_mask"].bool()


def _masked_mean(tokens: Tensor, mask: Tensor) -> Tensor:
    weights = mask.unsqueeze(-1).to(tokens.dtype)  # (B, T, 1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, D)


def _embed_images(body: Body, x: np.ndarray) -> np.ndarray:
    """Patch embeddings (positions included) averaged over patches, class token left out."""
    embeddings = body.input_embeddings
    chunks = []
    for i in range(0, len(x), IMAGE_BATCH):
        tokens = embeddings(prepare_images(body, x[i : i + IMAGE_BATCH]))  # (B, 1 + P, D)
        if getattr(embeddings, "cls_token", None) is not None:
            tokens = tokens[:, 1:]  # (B, P, D)
        chunks.append(tokens.mean(1))
    return torch.cat(chunks).numpy()


def prepare_images(body: Body, images: np.ndarray) -> Tensor:
    """Images (n, H, W) or (n, C, H, W) -> (n, 3, S, S) at the body's image size, normalised.

    Integer images are read as 0..255, float images as 0..1; ImageNet mean and std follow.
    """
    if images.ndim == 3:
        images = images[:, None]  # (n, 1, H, W)
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"proxy images must be (n, H, W) or (n, 1|3, H, W), got {images.shape}")
    pixels = torch.from_numpy(images.astype(np.float32))
    if images.dtype.kind in "iu":
        pixels = pixels / 255.0
    size = _image_size(body)
    pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", align_corners=False)
    pixels = pixels.expand(-1, 3, -1, -1)  # (n, 3, S, S)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return (pixels - mean) / std


def _image_size(body: Body) -> int:
    size = body.hf_model.config.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


EMBEDDERS: dict[str, Callable[[Body, np.ndarray], np.ndarray]] = {
    "text": _embed_text,
    "protein": _embed_text,
    "vision": _embed_images,
}


# --- built-in proxy datasets ----------------------------------------------------------------


def read_wordnet(body: Body, seed: int = 0) -> ProxyData:
    """WordNet noun definitions labeled by lexicographer file (noun.animal, noun.plant, ...).

    Needs the Debian package `wordnet-base`; takes `PER_CLASS` definitions per class.
    """
    path = WORDNET_DIR / "data.noun"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `apt-get install wordnet-base`")
    by_class: dict[int, list[str]] = {lexfile: [] for lexfile in WORDNET_CLASSES}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        lexfile, gloss = _parse_synset(line)
        if lexfile in by_class:
            by_class[lexfile].append(gloss)
    return _balanced(by_class, tuple(WORDNET_CLASSES.values()), seed)


def _parse_synset(line: str) -> tuple[int, str]:
    """(lexicographer file number, definition) of a data.noun line; (-1, "") for the header."""
    if line.startswith(" ") or "|" not in line:
        return -1, ""
    fields, gloss = line.split("|", 1)
    definition = gloss.split('; "', 1)[0].strip()  # drop the quoted usage examples
    return int(fields.split()[1]), definition


def _balanced(by_class: dict[int, list[str]], names: tuple[str, ...], seed: int) -> ProxyData:
    rng = np.random.default_rng(seed)
    texts, labels = [], []
    for label, items in enumerate(by_class.values()):
        chosen = rng.choice(len(items), size=min(PER_CLASS, len(items)), replace=False)
        texts += [items[i] for i in sorted(chosen)]
        labels += [label] * len(chosen)
    return ProxyData(x=np.array(texts), y=np.array(labels, dtype=np.int64), classes=names)


def read_fashion_mnist(body: Body, seed: int = 0) -> ProxyData:
    """Fashion-MNIST training images (n, 28, 28) uint8, `PER_CLASS` of each of 10 classes.

    Needs the Debian package `dataset-fashion-mnist`.
    """
    images = _read_idx(FASHION_DIR / "train-images-idx3-ubyte.gz")  # (60000, 28, 28)
    labels = _read_idx(FASHION_DIR / "train-labels-idx1-ubyte.gz").astype(np.int64)
    rng = np.random.default_rng(seed)
    keep = np.concatenate(
        [
            np.sort(rng.choice(np.flatnonzero(labels == c), PER_CLASS, replace=False))
            for c in range(10)
        ]
    )
    return ProxyData(x=images[keep], y=labels[keep], classes=FASHION_CLASSES)


def _read_idx(path: Path) -> np.ndarray:
    """An IDX file (the MNIST format): big-endian dims after a 4-byte magic number."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; run `apt-get install dataset-fashion-mnist`")
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = np.frombuffer(raw, dtype=">u4", count=ndim, offset=4)
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_synthetic(body: Body, seed: int = 0) -> ProxyData:
    """A small seeded proxy (10 classes x 50) that needs no files, for tests and tiny bodies.

    Text: each class draws tokens from its own band of the vocabulary. Vision: each class is
    a fixed random 4 x 4 pattern, upsampled, plus noise.
    """
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(10), 50)
    if body.info.modality == "vision":
        patterns = rng.uniform(size=(10, 4, 4))
        images = np.kron(patterns[labels], np.ones((4, 4)))  # (500, 16, 16)
        x = np.clip(images + 0.1 * rng.normal(size=images.shape), 0, 1).astype(np.float32)
    else:
        vocab = body.hf_model.config.vocab_size
        band = (vocab - 5) // 10  # the first ids are usually special tokens
        x = 5 + labels[:, None] * band + rng.integers(0, band, size=(500, 16))
    names = tuple(f"class {label}" for label in range(10))
    return ProxyData(x=x, y=labels, classes=names)


PROXIES.add(
    "wordnet",
    ProxySpec("wordnet", ("text",), "WordNet noun definitions, 10 lexical classes", read_wordnet),
)
PROXIES.add(
    "fashion-mnist",
    ProxySpec("fashion-mnist", ("vision",), "Fashion-MNIST clothing images", read_fashion_mnist),
)
PROXIES.add(
    "synthetic",
    ProxySpec(
        "synthetic",
        ("text", "vision", "protein"),
        "seeded class-banded tokens or patterns",
        read_synthetic,
    ),
)
