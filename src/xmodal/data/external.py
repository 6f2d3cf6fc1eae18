"""Loaders for the ORCA paper's real datasets, read from files the user has downloaded.

The built-in catalog (`xmodal.data.catalog`) covers every task type offline with small data;
this module reads the full benchmark datasets (NAS-Bench-360, JSB Chorales, ListOps, remote
homology) in the layout their distributors ship. `load_external(name, root)` returns `Splits`;
each entry of `EXTERNAL` documents the files it expects under `root`, and a missing file is
a `FileNotFoundError` that names it. Several formats are Python pickles, which can run code
when read: load only files from the datasets' own distributors.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import logging
import pickle
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xmodal.data.catalog.common import zscore_channels
from xmodal.data.catalog.logic import TOKEN_ID, VOCABULARY, encode
from xmodal.data.catalog.music import LOWEST_KEY, N_KEYS, windows
from xmodal.data.splits import Splits
from xmodal.registry import Registry

logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ExternalSet:
    """A dataset read from user-supplied files, and the layout it expects under `root`."""

    name: str
    description: str  # what it is, the expected files and the preprocessing applied
    dims: int
    task_type: str
    metric: str
    loader: Callable[[Path], Splits]


EXTERNAL: Registry[ExternalSet] = Registry("external dataset")


def load_external(name: str, root: Path | str) -> Splits:
    """Load external dataset `name` from the folder `root` (see `EXTERNAL[name].description`)."""
    spec = EXTERNAL.get(name)
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"root for {name!r} must be an existing folder, got {root}")
    return spec.loader(root)


def external_names() -> list[str]:
    return EXTERNAL.names()


def require(root: Path, *relative: str) -> list[Path]:
    """The paths of `relative` under `root`, or a FileNotFoundError naming the first missing."""
    paths = [root / r for r in relative]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"expected file {path} is missing (see the dataset's layout)")
    return paths


def _external(**fields) -> Callable[[Callable[[Path], Splits]], Callable[[Path], Splits]]:
    """Decorator registering a loader function with its description and task fields."""

    def add(loader: Callable[[Path], Splits]) -> Callable[[Path], Splits]:
        EXTERNAL.add(fields["name"], ExternalSet(loader=loader, **fields))
        return loader

    return add


def _float(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def _load_pickle(path: Path, opener: Callable = open) -> object:
    with opener(path, "rb") as f:
        return pickle.load(f, encoding="latin1")  # files written by Python 2 need latin1


def _read_mat(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """Read `keys` from a MATLAB file: v5 via scipy, v7.3 (HDF5) via h5py if installed."""
    import scipy.io

    try:
        data = scipy.io.loadmat(str(path), variable_names=list(keys))
        return {k: data[k] for k in keys}
    except NotImplementedError:  # v7.3 files are HDF5
        pass
    try:
        import h5py
    except ImportError as err:
        raise ImportError(
            f"{path} is a MATLAB v7.3 file; reading it needs `pip install h5py`"
        ) from err
    with h5py.File(path, "r") as f:  # HDF5 stores MATLAB arrays with reversed axes
        return {k: np.asarray(f[k]).transpose() for k in keys}


# --- images -------------------------------------------------------------------------------


@_external(
    name="cifar100",
    description="CIFAR-100 (python version). Files: cifar-100-python/train and"
    " cifar-100-python/test, pickled dicts with b'data' (N, 3072) uint8 and b'fine_labels'."
    " Returns (N, 3, 32, 32) in [0, 1], 100 classes, official 50000/10000 split.",
    dims=2,
    task_type="classification",
    metric="error",
)
def load_cifar100(root: Path) -> Splits:
    train, test = require(root, "cifar-100-python/train", "cifar-100-python/test")
    arrays = {}
    for part, path in (("train", train), ("test", test)):
        batch = _load_pickle(path)
        batch = {k.decode() if isinstance(k, bytes) else k: v for k, v in batch.items()}
        x = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)  # (N, C, H, W)
        arrays[f"x_{part}"] = _float(x / 255.0)
        arrays[f"y_{part}"] = np.asarray(batch["fine_labels"], dtype=np.int64)
    return Splits(**arrays)


@_external(
    name="spherical",
    description="NAS-Bench-360 Spherical (CIFAR-100 on rotated spheres). File: s2_cifar100.gz,"
    " a gzipped pickle {'train': {'images', 'labels'}, 'test': {...}} with images"
    " (N, 3, 60, 60) in 0-255. Returns (N, 3, 60, 60) in [0, 1], 100 classes.",
    dims=2,
    task_type="classification",
    metric="error",
)
def load_spherical(root: Path) -> Splits:
    (path,) = require(root, "s2_cifar100.gz")
    data = _load_pickle(path, gzip.open)
    arrays = {}
    for part in ("train", "test"):
        arrays[f"x_{part}"] = _float(np.asarray(data[part]["images"]) / 255.0)
        arrays[f"y_{part}"] = np.asarray(data[part]["labels"], dtype=np.int64)
    return Splits(**arrays)


# --- time series and signals ---------------------------------------------------------------


@_external(
    name="ninapro",
    description="NAS-Bench-360 NinaPro DB5 (sEMG gestures). Files: ninaPro/ninapro_{train,val,"
    "test}.npy (N, A, B) and ninaPro/label_{train,val,test}.npy; each sample is transposed to"
    " (1, B, A), as NAS-Bench-360 does. 18 classes, official train/val/test.",
    dims=2,
    task_type="classification",
    metric="error",
)
def load_ninapro(root: Path) -> Splits:
    arrays = {}
    for part in ("train", "val", "test"):
        x_path, y_path = require(root, f"ninaPro/ninapro_{part}.npy", f"ninaPro/label_{part}.npy")
        x = np.load(x_path, allow_pickle=True, encoding="bytes")
        arrays[f"x_{part}"] = _float(np.swapaxes(x, 1, 2)[:, None])  # (N, 1, B, A)
        arrays[f"y_{part}"] = np.load(y_path, allow_pickle=True).astype(np.int64)
    return Splits(**arrays)


ECG_CLASSES = {"N": 0, "A": 1, "O": 2, "~": 3}  # normal, atrial fibrillation, other, noisy
ECG_WINDOW, ECG_STRIDE = 1000, 500


def _ecg_windows(records: list[np.ndarray], labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    xs, ys = [], []
    for record, label in zip(records, labels):
        record = (record - record.mean()) / max(record.std(), 1e-8)  # per-record z-score
        if len(record) < ECG_WINDOW:
            record = np.pad(record, (0, ECG_WINDOW - len(record)))
        starts = range(0, len(record) - ECG_WINDOW + 1, ECG_STRIDE)
        xs += [record[s : s + ECG_WINDOW] for s in starts]
        ys += [label] * len(starts)
    return _float(np.stack(xs)[:, None]), np.asarray(ys, dtype=np.int64)  # (N, 1, WINDOW)


@_external(
    name="ecg",
    description="NAS-Bench-360 ECG (PhysioNet/CinC 2017). File: challenge2017.pkl, a pickled"
    " dict with 'data' (list of 1D recordings) and 'label' ('N', 'A', 'O', '~'). Records are"
    " z-scored, split 90/10 by record (seed 0), and cut into windows (N, 1, 1000), stride 500.",
    dims=1,
    task_type="classification",
    metric="macro-f1",
)
def load_ecg(root: Path) -> Splits:
    (path,) = require(root, "challenge2017.pkl")
    data = _load_pickle(path)
    records = [np.asarray(r, dtype=np.float64).ravel() for r in data["data"]]
    labels = np.asarray([ECG_CLASSES[str(label)] for label in data["label"]])
    order = np.random.default_rng(0).permutation(len(records))
    n_test = max(1, int(round(0.1 * len(records))))
    test, train = order[:n_test], order[n_test:]
    x_train, y_train = _ecg_windows([records[i] for i in train], labels[train])
    x_test, y_test = _ecg_windows([records[i] for i in test], labels[test])
    return Splits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


@_external(
    name="satellite",
    description="NAS-Bench-360 Satellite (land-cover time series). Files: satellite_train.npy"
    " and satellite_test.npy, each a saved dict with 'data' (N, 46) and 'label' 1-24."
    " Returns (N, 1, 46) z-scored, 24 classes.",
    dims=1,
    task_type="classification",
    metric="error",
)
def load_satellite(root: Path) -> Splits:
    arrays = {}
    for part in ("train", "test"):
        (path,) = require(root, f"satellite_{part}.npy")
        data = np.load(path, allow_pickle=True)[()]
        arrays[f"x_{part}"] = _float(np.asarray(data["data"])[:, None])  # (N, 1, 46)
        arrays[f"y_{part}"] = np.asarray(data["label"], dtype=np.int64) - 1
    return zscore_channels(Splits(**arrays))


# --- audio ---------------------------------------------------------------------------------

AUDIO_RATE, N_MELS, HOP, FFT = 22050, 96, 220, 441


def mel_filterbank(n_mels: int, n_fft: int, rate: int) -> np.ndarray:
    """Triangular mel filters (n_mels, n_fft // 2 + 1) on the HTK mel scale."""
    mel = np.linspace(0, 2595 * np.log10(1 + rate / 2 / 700), n_mels + 2)
    hz = 700 * (10 ** (mel / 2595) - 1)
    bins = np.fft.rfftfreq(n_fft, 1 / rate)  # (n_fft // 2 + 1,)
    lower, centre, upper = hz[:-2, None], hz[1:-1, None], hz[2:, None]
    rising = (bins - lower) / (centre - lower)
    falling = (upper - bins) / (upper - centre)
    return np.maximum(0, np.minimum(rising, falling))


def log_mel(path: Path) -> np.ndarray:
    """The first second of a wav file as a (N_MELS, 101) log-mel spectrogram at 22.05 kHz."""
    from scipy.io import wavfile
    from scipy.signal import resample_poly, stft

    rate, audio = wavfile.read(path)
    audio = audio.astype(np.float64)
    audio = audio.mean(axis=1) if audio.ndim == 2 else audio
    audio = resample_poly(audio, AUDIO_RATE, rate)[:AUDIO_RATE]
    audio = np.pad(audio, (0, AUDIO_RATE - len(audio)))
    _, _, spec = stft(audio, nperseg=FFT, noverlap=FFT - HOP, boundary="even", padded=False)
    power = np.abs(spec) ** 2  # (FFT // 2 + 1, frames)
    return np.log(mel_filterbank(N_MELS, FFT, AUDIO_RATE) @ power + 1e-6)


def _fsd_part(folder: Path, rows: list[dict], vocabulary: dict[str, int]) -> tuple:
    x = np.stack([log_mel(folder / f"{row['fname']}.wav") for row in rows])[:, None]
    y = np.zeros((len(rows), len(vocabulary)), dtype=np.int64)
    for i, row in enumerate(rows):
        y[i, [vocabulary[label] for label in row["labels"].split(",")]] = 1.0
    return _float(x), y  # (N, 1, N_MELS, frames), (N, K) 0/1


@_external(
    name="fsd50k",
    description="FSD50K sound events. Files: FSD50K.ground_truth/{vocabulary.csv, dev.csv,"
    " eval.csv} and wavs in FSD50K.dev_audio/ and FSD50K.eval_audio/. The first second of"
    " each clip becomes a log-mel spectrogram (N, 1, 96, 101); target (N, 200) labels;"
    " dev.csv's train/val split, eval as test.",
    dims=2,
    task_type="multilabel",
    metric="map",
)
def load_fsd50k(root: Path) -> Splits:
    names = ("vocabulary.csv", "dev.csv", "eval.csv")
    vocab_path, dev_path, eval_path = require(root, *(f"FSD50K.ground_truth/{n}" for n in names))
    with open(vocab_path, newline="") as f:
        vocabulary = {row[1]: int(row[0]) for row in csv.reader(f)}  # index, label, mid
    with open(dev_path, newline="") as f:
        dev = list(csv.DictReader(f))  # fname, labels, mids, split
    with open(eval_path, newline="") as f:
        parts = {"test": list(csv.DictReader(f))}
    parts["train"] = [row for row in dev if row["split"] == "train"]
    parts["val"] = [row for row in dev if row["split"] == "val"]

    arrays = {}
    for part, rows in parts.items():
        if not rows:  # a dev.csv without a val split
            continue
        folder = root / ("FSD50K.eval_audio" if part == "test" else "FSD50K.dev_audio")
        arrays[f"x_{part}"], arrays[f"y_{part}"] = _fsd_part(folder, rows, vocabulary)
    return zscore_channels(Splits(**arrays))


# --- PDEs and science ----------------------------------------------------------------------

DARCY_STRIDE, DARCY_TRAIN, DARCY_TEST = 5, 1000, 100


@_external(
    name="darcy",
    description="Darcy flow of FNO / NAS-Bench-360. Files: piececonst_r421_N1024_smooth1.mat"
    " (train) and piececonst_r421_N1024_smooth2.mat (test) with 'coeff' and 'sol' (N, 421,"
    " 421). Every 5th grid point is kept: (N, 1, 85, 85); the first 1000 train / 100 test;"
    " input z-scored, target u raw.",
    dims=2,
    task_type="dense-regression",
    metric="rel-l2",
)
def load_darcy(root: Path) -> Splits:
    train, test = require(
        root, "piececonst_r421_N1024_smooth1.mat", "piececonst_r421_N1024_smooth2.mat"
    )
    arrays = {}
    for part, path, n in (("train", train, DARCY_TRAIN), ("test", test, DARCY_TEST)):
        fields = _read_mat(path, ("coeff", "sol"))
        grid = np.s_[:n, ::DARCY_STRIDE, ::DARCY_STRIDE]
        arrays[f"x_{part}"] = _float(fields["coeff"][grid][:, None])  # (N, 1, 85, 85)
        arrays[f"y_{part}"] = _float(fields["sol"][grid][:, None])
    return zscore_channels(Splits(**arrays))


PSICOV_WINDOW = 128


def _pair_features(features: dict) -> np.ndarray:
    """PDNet's 57 pairwise channels (57, L, L) from one protein's feature dict."""
    length = len(features["seq"])
    per_residue = [np.asarray(features["ss"])]  # (3, L)
    per_residue.append(np.asarray(features["pssm"]).T)  # (22, L)
    per_residue += [np.asarray(features["sa"])[None], np.asarray(features["entropy"])[None]]
    rows = np.concatenate(per_residue).astype(np.float32)  # (27, L)
    channels = []
    for row in rows:  # each residue feature as a row map and its transpose
        tiled = np.broadcast_to(row[None, :], (length, length))
        channels += [tiled, tiled.T]
    channels += [np.asarray(features[k]) for k in ("ccmpred", "freecon", "potential")]
    return np.stack(channels).astype(np.float32)  # (57, L, L)


def _crop(array: np.ndarray, size: int) -> np.ndarray:
    """The top-left (..., size, size) corner, zero-padded when the protein is shorter."""
    out = np.zeros(array.shape[:-2] + (size, size), dtype=np.float32)
    n = min(size, array.shape[-1])
    out[..., :n, :n] = array[..., :n, :n]
    return out


def _psicov_part(root: Path, folder: str) -> tuple[np.ndarray, np.ndarray]:
    (listing,) = require(root, f"protein/{folder}.lst")
    ids = [line.split()[0] for line in listing.read_text().splitlines() if line.strip()]
    xs, ys = [], []
    for pdb in ids:
        feat, dist = require(
            root, f"protein/{folder}/features/{pdb}.pkl", f"protein/{folder}/distance/{pdb}-cb.npy"
        )
        xs.append(_crop(_pair_features(_load_pickle(feat)), PSICOV_WINDOW))
        _, _, distances = np.load(dist, allow_pickle=True)  # (length, sequence, (L, L) map)
        ys.append(_crop(np.asarray(distances, dtype=np.float32), PSICOV_WINDOW))
    return np.stack(xs), np.stack(ys)  # (N, 57, W, W), (N, W, W)


@_external(
    name="psicov",
    description="NAS-Bench-360 PSICOV (inter-residue distances, PDNet features). Files:"
    " protein/{deepcov,psicov}.lst, protein/<set>/features/<id>.pkl (dict with seq, ss, pssm,"
    " sa, entropy, ccmpred, freecon, potential) and protein/<set>/distance/<id>-cb.npy"
    " (length, sequence, map). DeepCov trains, PSICOV tests; 57 channels, each protein"
    " cropped/zero-padded to (128, 128); target distances in angstroms (N, 128, 128).",
    dims=2,
    task_type="dense-regression",
    metric="mae",
)
def load_psicov(root: Path) -> Splits:
    x_train, y_train = _psicov_part(root, "deepcov")
    x_test, y_test = _psicov_part(root, "psicov")
    return Splits(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def _resolve(root: Path, listed: str) -> Path:
    """A path from a list file, taken as-is if it exists, else relative to `root`."""
    path = Path(listed)
    if path.exists():
        return path
    for start in range(len(path.parts)):  # drop the prefix of the machine that wrote it
        candidate = root.joinpath(*path.parts[start:])
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"listed file {listed} not found, neither as given nor under {root}")


@_external(
    name="cosmic",
    description="NAS-Bench-360 Cosmic (cosmic-ray masks, deepCR data). Files: cosmic/"
    "train_dirs.npy and cosmic/test_dirs.npy list .npy files, each (3, H, W): image,"
    " cosmic-ray mask, ignore mask (the ignore mask is dropped). Input (N, 1, H, W) z-scored,"
    " target mask (N, 1, H, W); listed paths are resolved under root when absent.",
    dims=2,
    task_type="dense-multilabel",
    metric="auroc",
)
def load_cosmic(root: Path) -> Splits:
    arrays = {}
    for part in ("train", "test"):
        (listing,) = require(root, f"cosmic/{part}_dirs.npy")
        stacks = [np.load(_resolve(root, str(p))) for p in np.load(listing, allow_pickle=True)]
        stacked = np.stack(stacks)  # (N, 3, H, W)
        arrays[f"x_{part}"] = _float(stacked[:, :1])
        arrays[f"y_{part}"] = (stacked[:, 1:2] > 0).astype(np.int64)
    return zscore_channels(Splits(**arrays))


# --- genomics and proteins -----------------------------------------------------------------


def _deepsea_mat(root: Path) -> Splits:
    arrays = {}
    for part, stem in (("train", "train"), ("val", "valid"), ("test", "test")):
        (path,) = require(root, f"{stem}.mat")
        fields = _read_mat(path, (f"{stem}xdata", f"{stem}data"))
        arrays[f"x_{part}"] = _float(fields[f"{stem}xdata"])  # (N, 4, 1000)
        arrays[f"y_{part}"] = fields[f"{stem}data"].astype(np.int64)  # (N, 919)
    return Splits(**arrays)


@_external(
    name="deepsea",
    description="DeepSEA chromatin profiles. Either NAS-Bench-360's deepsea_filtered.npz with"
    " x_{train,val,test} (N, 1000, 4) and y_* (N, 36), or the original train.mat/valid.mat/"
    "test.mat ({stem}xdata (N, 4, 1000) one-hot DNA, {stem}data (N, 919) labels; train.mat"
    " is v7.3 and needs h5py). Returns (N, 4, 1000) one-hot, multilabel targets.",
    dims=1,
    task_type="multilabel",
    metric="auroc",
)
def load_deepsea(root: Path) -> Splits:
    npz = root / "deepsea_filtered.npz"
    if not npz.exists() and (root / "train.mat").exists():
        return _deepsea_mat(root)
    (npz,) = require(root, "deepsea_filtered.npz")
    with np.load(npz) as data:
        arrays = {}
        for part in ("train", "val", "test"):
            arrays[f"x_{part}"] = _float(np.swapaxes(data[f"x_{part}"], 1, 2))  # (N, 4, L)
            arrays[f"y_{part}"] = data[f"y_{part}"].astype(np.int64)
    return Splits(**arrays)


AMINO_ACIDS = "ACDEFGHIKLMNPQRSTVWYXBZUO"  # 20 standard residues, then ambiguity codes
HOMOLOGY_LENGTH = 512


def encode_protein(sequence: str, length: int = HOMOLOGY_LENGTH) -> np.ndarray:
    """One-hot (25, length) residues, truncated or zero-padded; unknown letters are X."""
    unknown = AMINO_ACIDS.index("X")
    ids = [AMINO_ACIDS.find(a) if a in AMINO_ACIDS else unknown for a in sequence[:length]]
    out = np.zeros((len(AMINO_ACIDS), length), dtype=np.float32)
    out[ids, np.arange(len(ids))] = 1.0
    return out


@_external(
    name="homology",
    description="TAPE remote homology (fold classification). Files: remote_homology/"
    "remote_homology_{train,valid,test_fold_holdout}.json, lists of records with 'primary'"
    " (amino-acid string) and 'fold_label'. Returns one-hot (N, 25, 512), truncated or"
    " zero-padded; 1195 folds.",
    dims=1,
    task_type="classification",
    metric="error",
)
def load_homology(root: Path) -> Splits:
    arrays = {}
    for part, stem in (("train", "train"), ("val", "valid"), ("test", "test_fold_holdout")):
        (path,) = require(root, f"remote_homology/remote_homology_{stem}.json")
        records = json.loads(path.read_text())
        arrays[f"x_{part}"] = np.stack([encode_protein(r["primary"]) for r in records])
        arrays[f"y_{part}"] = np.asarray([r["fold_label"] for r in records], dtype=np.int64)
    return Splits(**arrays)


# --- music and logic -----------------------------------------------------------------------


def _roll(sequence: list) -> np.ndarray:
    """An (88, T) binary piano roll from a list of time steps, each a collection of MIDI notes."""
    roll = np.zeros((N_KEYS, len(sequence)), dtype=np.float32)
    for t, notes in enumerate(sequence):
        keys = [int(n) - LOWEST_KEY for n in notes if 0 <= int(n) - LOWEST_KEY < N_KEYS]
        roll[keys, t] = 1.0
    return roll


@_external(
    name="jsb-chorales",
    description="JSB Chorales (Boulanger-Lewandowski et al. 2012). File: JSB_Chorales.pickle,"
    " a dict with 'train', 'valid', 'test' lists of chorales, each a list of quarter-note"
    " steps holding MIDI note numbers. Returns windows like the built-in `chorales` task:"
    " input 16 steps (N, 88, 16), target the notes of the following step (N, 88).",
    dims=1,
    task_type="multilabel",
    metric="nll",
)
def load_jsb_chorales(root: Path) -> Splits:
    (path,) = require(root, "JSB_Chorales.pickle")
    data = _load_pickle(path)
    arrays = {}
    for part, key in (("train", "train"), ("val", "valid"), ("test", "test")):
        pairs = [windows(_roll(chorale)) for chorale in data[key]]
        arrays[f"x_{part}"] = np.concatenate([p[0] for p in pairs])
        arrays[f"y_{part}"] = np.concatenate([p[1] for p in pairs]).astype(np.int64)
    return Splits(**arrays)


LISTOPS_MAX_LENGTH = 2000


def _listops_tokens(source: str) -> list[str]:
    """Tokens of an LRA ListOps source string; the tree-bracket parentheses are dropped."""
    tokens = [t for t in source.split() if t not in ("(", ")")]
    unknown = sorted(set(tokens) - set(TOKEN_ID))
    if unknown:
        raise ValueError(f"ListOps source has unknown tokens {unknown}; allowed: {VOCABULARY}")
    return tokens


@_external(
    name="listops",
    description="Long Range Arena ListOps. Files: basic_train.tsv, basic_val.tsv and"
    " basic_test.tsv with a header and columns Source (expression) and Target (0-9)."
    " Tokens are one-hot as in the built-in `listops` task, (N, 15, L) with L the longest"
    " expression (at most 2000; longer ones are truncated), zero-padded.",
    dims=1,
    task_type="classification",
    metric="error",
)
def load_listops(root: Path) -> Splits:
    parts = {}
    for part in ("train", "val", "test"):
        (path,) = require(root, f"basic_{part}.tsv")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        parts[part] = (
            [_listops_tokens(r["Source"]) for r in rows],
            [int(r["Target"]) for r in rows],
        )
    length = min(LISTOPS_MAX_LENGTH, max(len(t) for tokens, _ in parts.values() for t in tokens))
    arrays = {}
    for part, (sequences, targets) in parts.items():
        arrays[f"x_{part}"] = np.stack([encode(t[:length], length) for t in sequences])
        arrays[f"y_{part}"] = np.asarray(targets, dtype=np.int64)
    return Splits(**arrays)
