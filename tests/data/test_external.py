"""Tests of the external dataset loaders on tiny files written in each distributor's format."""

from __future__ import annotations

import gzip
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from xmodal.data import external
from xmodal.data.arrays import prepare
from xmodal.data.external import EXTERNAL, load_external
from xmodal.registry import UnknownNameError

RNG = np.random.default_rng(0)


def _pickle(path: Path, obj: object, opener=open) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with opener(path, "wb") as f:
        pickle.dump(obj, f)


def _save(path: Path, array) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, array, allow_pickle=True)


def write_cifar100(root: Path) -> None:
    for part, n in (("train", 6), ("test", 4)):
        batch = {b"data": RNG.integers(0, 256, (n, 3072), dtype=np.uint8)}
        batch[b"fine_labels"] = list(RNG.integers(0, 100, n))
        _pickle(root / "cifar-100-python" / part, batch)


def write_spherical(root: Path) -> None:
    data = {
        part: {"images": RNG.integers(0, 256, (n, 3, 60, 60)), "labels": np.arange(n)}
        for part, n in (("train", 5), ("test", 3))
    }
    _pickle(root / "s2_cifar100.gz", data, gzip.open)


def write_ninapro(root: Path) -> None:
    for part, n in (("train", 6), ("val", 2), ("test", 3)):
        _save(root / "ninaPro" / f"ninapro_{part}.npy", RNG.standard_normal((n, 52, 16)))
        _save(root / "ninaPro" / f"label_{part}.npy", RNG.integers(0, 18, n))


def write_ecg(root: Path) -> None:
    lengths = [2500, 900, 3000, 1500, 2000, 1200, 2200, 1800, 1000, 2600]
    data = [RNG.standard_normal(n) for n in lengths]
    labels = np.array(list("NAO~NAO~NA"))
    _pickle(root / "challenge2017.pkl", {"data": data, "label": labels})


def write_satellite(root: Path) -> None:
    for part, n in (("train", 8), ("test", 4)):
        record = {"data": RNG.standard_normal((n, 46)), "label": RNG.integers(1, 25, n)}
        _save(root / f"satellite_{part}.npy", record)


def write_fsd50k(root: Path) -> None:
    truth = root / "FSD50K.ground_truth"
    truth.mkdir(parents=True)
    (truth / "vocabulary.csv").write_text("0,Bark,/m/05tny_\n1,Speech,/m/09x0r\n2,Music,/m/04rlf\n")
    dev = (
        'fname,labels,mids,split\n1,Bark,/m/05tny_,train\n2,"Speech,Music",x,train\n3,Music,x,val\n'
    )
    (truth / "dev.csv").write_text(dev)
    (truth / "eval.csv").write_text('fname,labels,mids\n9,"Bark,Speech",x\n')
    for folder, names in (("FSD50K.dev_audio", (1, 2, 3)), ("FSD50K.eval_audio", (9,))):
        (root / folder).mkdir()
        for name, seconds in zip(names, (0.5, 1.5, 1.0)):
            audio = (RNG.standard_normal(int(44100 * seconds)) * 3000).astype(np.int16)
            scipy.io.wavfile.write(root / folder / f"{name}.wav", 44100, audio)


def write_darcy(root: Path) -> None:
    for smooth, n in ((1, 4), (2, 3)):
        fields = {"coeff": RNG.choice([3.0, 12.0], (n, 21, 21)), "sol": RNG.random((n, 21, 21))}
        scipy.io.savemat(root / f"piececonst_r421_N1024_smooth{smooth}.mat", fields)


def _protein(length: int) -> tuple[dict, np.ndarray]:
    pair = lambda: RNG.standard_normal((length, length))  # noqa: E731
    features = {
        "seq": "A" * length,
        "ss": RNG.random((3, length)),
        "pssm": RNG.random((length, 22)),
    }
    features |= {"sa": RNG.random(length), "entropy": RNG.random(length)}
    features |= {"ccmpred": pair(), "freecon": pair(), "potential": pair()}
    distance = np.empty(3, dtype=object)
    distance[:] = [length, "A" * length, RNG.random((length, length)) * 20]
    return features, distance


def write_psicov(root: Path) -> None:
    for folder, lengths in (("deepcov", (40, 150)), ("psicov", (60,))):
        ids = [f"{folder}{i}" for i in range(len(lengths))]
        (root / "protein").mkdir(exist_ok=True)
        (root / "protein" / f"{folder}.lst").write_text("\n".join(ids) + "\n")
        for pdb, length in zip(ids, lengths):
            features, distance = _protein(length)
            _pickle(root / "protein" / folder / "features" / f"{pdb}.pkl", features)
            _save(root / "protein" / folder / "distance" / f"{pdb}-cb.npy", distance)


def write_cosmic(root: Path) -> None:
    for part, n in (("train", 3), ("test", 2)):
        listed = []
        for i in range(n):
            relative = Path("npy_" + part) / "f435w" / f"{i}.npy"
            stack = RNG.standard_normal((3, 16, 16))
            stack[1] = RNG.random((16, 16)) > 0.9
            _save(root / relative, stack)
            listed.append(str(Path("/elsewhere/data") / relative))  # written on another machine
        _save(root / "cosmic" / f"{part}_dirs.npy", np.array(listed))


def _one_hot_dna(n: int, length: int) -> np.ndarray:
    return np.eye(4)[RNG.integers(0, 4, (n, length))]  # (n, length, 4)


def write_deepsea(root: Path) -> None:
    arrays = {}
    for part, n in (("train", 5), ("val", 2), ("test", 3)):
        arrays[f"x_{part}"] = _one_hot_dna(n, 1000).astype(np.uint8)
        arrays[f"y_{part}"] = RNG.integers(0, 2, (n, 36)).astype(np.uint8)
    np.savez(root / "deepsea_filtered.npz", **arrays)


def write_deepsea_mat(root: Path) -> None:
    for stem, n in (("train", 5), ("valid", 2), ("test", 3)):
        x = _one_hot_dna(n, 1000).transpose(0, 2, 1).astype(np.uint8)  # (n, 4, 1000)
        fields = {f"{stem}xdata": x, f"{stem}data": RNG.integers(0, 2, (n, 919)).astype(np.uint8)}
        scipy.io.savemat(root / f"{stem}.mat", fields)


def write_homology(root: Path) -> None:
    folder = root / "remote_homology"
    folder.mkdir()
    for stem, n in (("train", 4), ("valid", 2), ("test_fold_holdout", 3)):
        records = [
            {"primary": "MKTAYIAKQRQISFVKSHFSRQ" * (i + 1), "fold_label": i} for i in range(n)
        ]
        (folder / f"remote_homology_{stem}.json").write_text(json.dumps(records))


def write_jsb(root: Path) -> None:
    def chorale(steps: int) -> list:
        return [tuple(int(p) for p in RNG.integers(36, 82, 4)) for _ in range(steps)]

    data = {"train": [chorale(60), chorale(45)], "valid": [chorale(50)], "test": [chorale(41)]}
    _pickle(root / "JSB_Chorales.pickle", data)


def write_listops(root: Path) -> None:
    rows = {
        "train": [("( ( [MAX 2 ) 9 ) ]", 9), ("[SM 3 [MIN 4 7 ] 5 ]", 2)],
        "val": [("[MED 1 5 3 ]", 3)],
        "test": [("( [MIN 8 [MAX 1 6 ] ) ]", 6)],
    }
    for part, examples in rows.items():
        body = "".join(f"{source}\t{target}\n" for source, target in examples)
        (root / f"basic_{part}.tsv").write_text("Source\tTarget\n" + body)


WRITERS = {
    "cifar100": write_cifar100,
    "spherical": write_spherical,
    "ninapro": write_ninapro,
    "ecg": write_ecg,
    "satellite": write_satellite,
    "fsd50k": write_fsd50k,
    "darcy": write_darcy,
    "psicov": write_psicov,
    "cosmic": write_cosmic,
    "deepsea": write_deepsea,
    "homology": write_homology,
    "jsb-chorales": write_jsb,
    "listops": write_listops,
}


def test_every_registered_dataset_has_a_test():
    assert set(EXTERNAL.names()) == set(WRITERS)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_external_loads_written_files(name, tmp_path):
    WRITERS[name](tmp_path)
    spec = EXTERNAL.get(name)
    splits = load_external(name, tmp_path)
    for field in ("train", "test", "val"):
        x, y = getattr(splits, f"x_{field}"), getattr(splits, f"y_{field}")
        if x is None:
            continue
        assert x.dtype == np.float32 and x.ndim == spec.dims + 2
        assert len(x) == len(y) and np.isfinite(x).all()
    assert splits.x_train.shape[1:] == splits.x_test.shape[1:]
    assert "file" in spec.description.lower()
    classes = None
    if spec.task_type.endswith("classification"):
        classes = max(int(getattr(splits, f).max()) for f in splits.names() if f[0] == "y") + 1
    data = prepare(splits, task=spec.task_type, dims=spec.dims, num_outputs=classes)
    assert data.dims == spec.dims


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_missing_file_is_named(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_external(name, tmp_path)


def test_shapes_follow_the_benchmarks(tmp_path):
    write_cifar100(tmp_path)
    write_darcy(tmp_path)
    write_ecg(tmp_path)
    write_listops(tmp_path)
    assert load_external("cifar100", tmp_path).x_train.shape == (6, 3, 32, 32)
    darcy = load_external("darcy", tmp_path)
    assert darcy.x_train.shape == (4, 1, 5, 5) and darcy.y_test.shape == (3, 1, 5, 5)
    ecg = load_external("ecg", tmp_path)
    assert ecg.x_train.shape[1:] == (1, 1000) and set(np.unique(ecg.y_train)) <= {0, 1, 2, 3}
    listops = load_external("listops", tmp_path)
    assert listops.x_train.shape == (2, 15, 8)  # longest expression has 8 tokens
    np.testing.assert_array_equal(listops.y_train, [9, 2])


def test_psicov_crops_and_pads(tmp_path):
    write_psicov(tmp_path)
    splits = load_external("psicov", tmp_path)
    assert splits.x_train.shape == (2, 57, 128, 128) and splits.y_train.shape == (2, 128, 128)
    assert splits.y_train[0, 40:].max() == 0.0  # the 40-residue protein is zero-padded


def test_deepsea_reads_original_mat_files(tmp_path):
    write_deepsea_mat(tmp_path)
    splits = load_external("deepsea", tmp_path)
    assert splits.x_train.shape == (5, 4, 1000) and splits.y_val.shape == (2, 919)
    np.testing.assert_array_equal(splits.x_test.sum(axis=1), 1.0)


def test_satellite_labels_start_at_zero(tmp_path):
    write_satellite(tmp_path)
    splits = load_external("satellite", tmp_path)
    assert splits.y_train.min() >= 0 and splits.y_train.max() <= 23


def test_fsd50k_multilabel_targets(tmp_path):
    write_fsd50k(tmp_path)
    splits = load_external("fsd50k", tmp_path)
    assert splits.x_train.shape == (2, 1, external.N_MELS, 101)
    np.testing.assert_array_equal(splits.y_train, [[1, 0, 0], [0, 1, 1]])
    np.testing.assert_array_equal(splits.y_test, [[1, 1, 0]])


def test_jsb_targets_are_next_step(tmp_path):
    write_jsb(tmp_path)
    splits = load_external("jsb-chorales", tmp_path)
    assert splits.x_train.shape[1:] == (88, 16) and splits.y_train.shape[1:] == (88,)
    # windows overlap: the step after window i is step WINDOW - STRIDE of window i + 1
    np.testing.assert_array_equal(splits.x_train[1, :, -2], splits.y_train[0])


def test_listops_rejects_unknown_tokens(tmp_path):
    write_listops(tmp_path)
    (tmp_path / "basic_test.tsv").write_text("Source\tTarget\n[FOO 1 2 ]\t1\n")
    with pytest.raises(ValueError, match="FOO"):
        load_external("listops", tmp_path)


def test_unknown_name_and_bad_root(tmp_path):
    with pytest.raises(UnknownNameError, match="listops"):
        load_external("imagenet", tmp_path)
    with pytest.raises(FileNotFoundError, match="existing folder"):
        load_external("listops", tmp_path / "absent")
