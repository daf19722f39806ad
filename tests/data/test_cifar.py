"""CIFAR loading from hand-written pickle batches, the restricted unpickler and the augmentation."""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.data import DatasetNotFoundError, load_dataset
from prunelab.data.cifar import CIFAR10, ForbiddenGlobalError, RestrictedUnpickler, read_batch
from prunelab.data.registry import DatasetFormatError

# Protocol 3 pickles numpy arrays through numpy's _reconstruct, like the real files (protocol 5
# would use a different reconstructor, protocol 2 would encode bytes through _codecs).
PROTOCOL = 3


def write_batch(path: Path, data: np.ndarray, labels: list[int], label_key: bytes = b"labels") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    batch = {b"batch_label": b"test", b"data": data, label_key: labels, b"filenames": [b"x.png"] * len(data)}
    path.write_bytes(pickle.dumps(batch, protocol=PROTOCOL))


def random_batch(rng: np.random.Generator, n: int, num_classes: int = 10) -> tuple[np.ndarray, list[int]]:
    return rng.integers(0, 256, (n, 3072), dtype=np.uint8), rng.integers(0, num_classes, n).tolist()


def expected_inputs(data: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    images = data.reshape(-1, 3, 32, 32).astype(np.float64) / 255
    normalized = (images - np.array(mean)[:, None, None]) / np.array(std)[:, None, None]
    return torch.tensor(normalized, dtype=torch.float32)


@pytest.fixture
def cifar10_dir(tmp_path: Path) -> tuple[Path, list[tuple[np.ndarray, list[int]]]]:
    rng = np.random.default_rng(0)
    batches = [random_batch(rng, 2) for _ in range(5)] + [random_batch(rng, 3)]
    folder = tmp_path / "cifar-10-batches-py"
    for name, (data, labels) in zip([*CIFAR10.train_files, "test_batch"], batches):
        write_batch(folder / name, data, labels)
    return tmp_path, batches


def test_cifar10_shapes_values_and_normalization(cifar10_dir) -> None:
    data_dir, batches = cifar10_dir
    ds = load_dataset("cifar10", data_dir)
    assert ds.num_classes == 10 and ds.input_shape == (3, 32, 32)
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    train_data = np.concatenate([data for data, _ in batches[:5]])
    # CIFAR-10's published channel statistics (the std of the data, not the often-copied 0.2023, ...)
    mean, std = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
    torch.testing.assert_close(ds.x_train, expected_inputs(train_data, mean, std))
    torch.testing.assert_close(ds.x_test, expected_inputs(batches[5][0], mean, std))
    assert ds.y_train.tolist() == [label for _, labels in batches[:5] for label in labels]
    assert ds.y_test.dtype == torch.int64 and ds.y_test.tolist() == batches[5][1]
    # Row layout of b'data': 1024 red, then 1024 green, then 1024 blue values, row-major.
    pixel = train_data[0, 1024 + 5 * 32 + 7]
    expected = (pixel / 255 - mean[1]) / std[1]
    assert ds.x_train[0, 1, 5, 7].item() == pytest.approx(expected, abs=1e-5)


def test_cifar100_uses_fine_labels_and_its_own_normalization(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    written = {}
    for name, n in (("train", 4), ("test", 2)):
        data, labels = random_batch(rng, n, num_classes=100)
        path = tmp_path / "cifar-100-python" / name
        write_batch(path, data, labels, label_key=b"fine_labels")
        batch = pickle.loads(path.read_bytes())
        path.write_bytes(pickle.dumps({**batch, b"coarse_labels": [label // 5 for label in labels]}, protocol=PROTOCOL))
        written[name] = (data, labels)
    ds = load_dataset("cifar100", tmp_path)
    assert ds.num_classes == 100 and ds.x_train.shape == (4, 3, 32, 32)
    assert ds.y_train.tolist() == written["train"][1] and ds.y_test.tolist() == written["test"][1]
    # CIFAR-100's published channel statistics, not CIFAR-10's
    mean, std = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
    torch.testing.assert_close(ds.x_train, expected_inputs(written["train"][0], mean, std))
    torch.testing.assert_close(ds.x_test, expected_inputs(written["test"][0], mean, std))


def test_numpy1_module_path_is_allowed() -> None:
    data = np.arange(6, dtype=np.uint8).reshape(2, 3)
    raw = pickle.dumps({b"data": data}, protocol=PROTOCOL)
    # Files written with NumPy 1 (like the official ones) name numpy.core, not numpy._core.
    raw = raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in raw
    loaded = RestrictedUnpickler(io.BytesIO(raw)).load()
    np.testing.assert_array_equal(loaded[b"data"], data)


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_disallowed_global_is_refused(tmp_path: Path, cifar10_dir) -> None:
    data_dir, _ = cifar10_dir
    marker = tmp_path / "pwned"
    path = data_dir / "cifar-10-batches-py" / "data_batch_3"
    path.write_bytes(pickle.dumps({b"data": _RunsShell(marker)}, protocol=PROTOCOL))
    with pytest.raises(pickle.UnpicklingError, match="system") as info:
        load_dataset("cifar10", data_dir)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_builtins_eval_is_refused() -> None:
    raw = b"cbuiltins\neval\n(S'1+1'\ntR."
    with pytest.raises(pickle.UnpicklingError, match="builtins.eval"):
        RestrictedUnpickler(io.BytesIO(raw)).load()


def test_wrong_layout_names_the_file(cifar10_dir) -> None:
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "test_batch"
    write_batch(path, np.zeros((2, 100), dtype=np.uint8), [0, 1])
    with pytest.raises(DatasetFormatError, match="test_batch"):
        load_dataset("cifar10", data_dir)


def test_truncated_pickle_names_the_file(cifar10_dir) -> None:
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(path.read_bytes()[:50])
    with pytest.raises(DatasetFormatError, match="data_batch_1"):
        load_dataset("cifar10", data_dir)


def test_calls_to_builtins_and_object_arrays_are_refused() -> None:
    """Nothing but numpy arrays of plain dtypes: no bytes(2**62) to exhaust memory, no
    arrays of Python objects."""
    with pytest.raises(pickle.UnpicklingError, match="builtins.bytes"):
        RestrictedUnpickler(io.BytesIO(b"cbuiltins\nbytes\n(L4611686018427387904L\ntR.")).load()
    objects = pickle.dumps(np.array([{b"k": [1]}, b"x", 3], dtype=object), protocol=PROTOCOL)
    with pytest.raises(pickle.UnpicklingError, match="array of Python objects"):
        RestrictedUnpickler(io.BytesIO(objects)).load()


def test_shared_references_are_built_once_not_expanded() -> None:
    """A list holding the same list twice, 12 deep, is 4096 leaves in a few hundred bytes: a
    resolver that copied every reference would take time and memory doubling with each level
    (a 250-byte file at 22 levels took seconds). Shared in the file, shared in the result."""
    nested, array = [0], np.arange(6, dtype=np.uint8)
    for _ in range(12):
        nested = [nested, nested]
    loaded = RestrictedUnpickler(io.BytesIO(pickle.dumps({b"data": nested, b"pair": [array, array]}, protocol=PROTOCOL))).load()
    assert loaded[b"data"][0] is loaded[b"data"][1]
    assert loaded[b"pair"][0] is loaded[b"pair"][1] and np.array_equal(loaded[b"pair"][0], array)


def test_containers_that_hold_themselves_or_nest_too_deeply_are_format_errors() -> None:
    cycle: list = []
    cycle.append(cycle)
    with pytest.raises(DatasetFormatError, match="^batch_y: a container that contains itself$"):
        RestrictedUnpickler(io.BytesIO(pickle.dumps(cycle, protocol=PROTOCOL)), "batch_y").load()
    deep = b"\x80\x02" + b"]" * 100_000 + b"a" * 99_999 + b"."  # lists in lists, without recursing to write it
    with pytest.raises(DatasetFormatError, match="batch_x: containers nested too deeply"):
        RestrictedUnpickler(io.BytesIO(deep), "batch_x").load()


def test_corruption_beyond_truncation_names_the_file(cifar10_dir) -> None:
    """A flipped protocol byte: pickle raises a ValueError, not an UnpicklingError."""
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(b"\x80\xff" + path.read_bytes()[2:])
    with pytest.raises(DatasetFormatError, match="unsupported pickle protocol") as info:
        load_dataset("cifar10", data_dir)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(("labels", "message"), [([1.7, 2.2], "labels must be integers"), ([0, 200], r"labels must lie in \[0, 10\)")])
def test_labels_that_are_not_classes_name_the_file(cifar10_dir, labels, message) -> None:
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "test_batch"
    write_batch(path, np.zeros((2, 3072), dtype=np.uint8), labels)
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("cifar10", data_dir)
    assert str(path) in str(info.value)


def test_missing_cifar_says_where(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="download=True") as info:
        load_dataset("cifar10", tmp_path)
    assert str(tmp_path / "cifar-10-batches-py" / "data_batch_1") in str(info.value)


def test_augment_is_deterministic_and_keeps_shape(cifar10_dir) -> None:
    ds = load_dataset("cifar10", cifar10_dir[0])
    assert ds.augment is not None
    first = ds.augment(ds.x_train, torch.Generator().manual_seed(7))
    again = ds.augment(ds.x_train, torch.Generator().manual_seed(7))
    other = ds.augment(ds.x_train, torch.Generator().manual_seed(8))
    assert first.shape == ds.x_train.shape
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


class _Recipe:
    """Pickles as the given reduce tuple: a way to write pickles numpy itself never would."""

    def __init__(self, *reduce) -> None:
        self.reduce = reduce

    def __reduce__(self):
        return self.reduce


def test_a_dtype_rebuilt_to_claim_more_bytes_than_its_buffer_is_refused() -> None:
    """A 1-byte dtype given a (3072,) subarray by its pickled state would make numpy view n
    bytes as n x 3072 and read memory outside the buffer (or crash); the state is refused."""
    u1 = _Recipe(np.dtype, ("u1", False, True))
    v1 = _Recipe(np.dtype, ("V1", False, True), (3, "|", (u1, (3072,)), None, None, 1, 1, 0))
    raw = pickle.dumps({b"data": _Recipe(np.ndarray, ((20,), v1, b"\x07" * 20)), b"labels": [1] * 20}, protocol=3)
    with pytest.raises(ForbiddenGlobalError, match="refusing a dtype that is not a plain number type"):
        RestrictedUnpickler(io.BytesIO(raw)).load()
    lying = pickle.dumps(_Recipe(np.empty(0).__reduce__()[0], (np.ndarray, (0,), b"b"), (1, (4, 3072), np.dtype("u1"), False, b"\x07" * 20)))
    with pytest.raises(DatasetFormatError, match=r"an array of shape \(4, 3072\) and uint8 holds 20 bytes, not 12288"):
        RestrictedUnpickler(io.BytesIO(lying)).load()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_batches_pickled_by_python_3_at_any_protocol_load(protocol: int, tmp_path: Path) -> None:
    """Arrays come back with their values whatever their memory layout: big-endian labels,
    Fortran order (the bytes column by column), none at all."""
    data = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    labels = np.array([3, 7], dtype=">i8")  # read as little-endian: 3 * 2**56 and 7 * 2**56
    columns = np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(2, 3))
    batch = {b"data": data, b"labels": labels, b"filenames": [b"a.png", b"b.png"], b"batch_label": b"",
             b"columns": columns, b"empty": np.zeros((0, 3072), np.uint8)}  # fmt: skip
    loaded = RestrictedUnpickler(io.BytesIO(pickle.dumps(batch, protocol=protocol))).load()
    np.testing.assert_array_equal(loaded[b"data"], data)
    assert loaded[b"labels"].tolist() == [3, 7]
    assert loaded[b"columns"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert loaded[b"empty"].shape == (0, 3072)
    assert loaded[b"filenames"] == [b"a.png", b"b.png"] and loaded[b"batch_label"] == b""
    # Labels kept as numpy scalars (a list built from an array) read as the same classes.
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({**batch, b"labels": list(labels), b"data": np.zeros((2, 3072), np.uint8)}, protocol=protocol))
    _, read_labels = read_batch(path, b"labels", 10)
    assert read_labels.tolist() == [3, 7]


def test_a_refused_pickle_is_one_line_from_the_cli(tmp_path: Path, cifar10_dir, capsys) -> None:
    from prunelab import cli

    data_dir, _ = cifar10_dir
    marker = tmp_path / "pwned"
    path = data_dir / "cifar-10-batches-py" / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _RunsShell(marker)}, protocol=2))
    code = cli.main(["run", "--no-progress", "--out", str(tmp_path / "runs"), "--set", "data.name=cifar10",
                     "--set", f"data.data_dir={data_dir}", "--set", "model.name=conv2", "--set", "model.options={}", "--set", "device=cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and not marker.exists()
    assert err.strip().splitlines()[-1] == f"prunelab: error: {path}: refusing to load global posix.system"


def test_an_incomplete_folder_with_download_says_to_remove_it(cifar10_dir) -> None:
    """download=True fetches only a missing folder: for a partial one, "pass download=True" cannot help."""
    data_dir, _ = cifar10_dir
    (data_dir / "cifar-10-batches-py" / "data_batch_3").unlink()
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_3 not found. Pass download=True"):
        load_dataset("cifar10", data_dir)
    with pytest.raises(DatasetNotFoundError, match=r"data_batch_3 not found in an incomplete .*cifar-10-batches-py; remove the folder"):
        load_dataset("cifar10", data_dir, download=True)


def _array(state: tuple) -> bytes:
    """A pickle of numpy's own array reconstruction with the given ``__setstate__`` state."""
    return pickle.dumps(_Recipe(np.empty(0).__reduce__()[0], (np.ndarray, (0,), b"b"), state), protocol=PROTOCOL)


@pytest.mark.parametrize(
    ("raw", "error", "message"),
    [
        (_array((1, (2,), 7, False, b"\x00\x00")), ForbiddenGlobalError, "refusing an array whose dtype is int"),
        (_array((1, (-2,), np.dtype("u1"), False, b"")), DatasetFormatError, r"an array of shape \(-2,\)"),
        (_array((1, (2,), np.dtype("u1"))), DatasetFormatError, "an array without its data"),
        (pickle.dumps(np.dtype("u1"), protocol=PROTOCOL), ForbiddenGlobalError, "refusing a bare _Dtype outside an array"),
        (
            pickle.dumps(_Recipe(__import__("_codecs").encode, ("\u20ac", "utf8")), protocol=PROTOCOL),
            ForbiddenGlobalError, r"refusing _codecs.encode\(str, 'utf8'\)",
        ),
        (
            pickle.dumps(_Recipe(np.int64(3).__reduce__()[0], (np.dtype("i8"), b"\x03")), protocol=PROTOCOL),
            DatasetFormatError, r"an array of shape \(\) and int64 holds 1 byte, not 8",
        ),
        (_array((1, (2,), np.dtype("u1"), False, b"\x00\x00\x00")), DatasetFormatError, r"an array of shape \(2,\) and uint8 holds 3 bytes, not 2"),
        # the allowed globals by themselves, not building an array: nothing a batch holds
        (b"c_codecs\nencode\n.", ForbiddenGlobalError, "refusing a bare function outside an array"),
        (b"cnumpy\nndarray\n.", ForbiddenGlobalError, "refusing a bare object outside an array"),
        # numpy's own errors for text that names no dtype escaped as TypeError and ValueError
        (_array((1, (2,), _Recipe(np.dtype, ("", False, True)), False, b"\x00\x00")), ForbiddenGlobalError, "refusing an array of ''"),
        (_array((1, (2,), _Recipe(np.dtype, ("ix", False, True)), False, b"\x00\x00")), ForbiddenGlobalError, "refusing an array of 'ix'"),
        (_array((1, (2,), _Recipe(np.dtype, ("u1(2,)", False, True)), False, b"\x00\x00")), ForbiddenGlobalError, r"refusing an array of 'u1\(2,\)'"),
        (
            _array((1, (2,), _Recipe(np.dtype, ("u1", False, True), (3, "?", None, None, None, -1, -1, 0)), False, b"\x00\x00")),
            ForbiddenGlobalError, r"refusing a dtype that is not a plain number type \(state \(3, '\?'",
        ),
    ],
    ids=["dtype-not-a-dtype", "negative-shape", "no-data", "bare-dtype", "codecs-not-latin1", "scalar-short", "bytes-left-over",
         "bare-function", "bare-ndarray", "dtype-empty-text", "dtype-unknown-text", "dtype-subarray-text", "dtype-unknown-byte-order"],
)
def test_arrays_and_bytes_the_official_files_never_hold_are_refused(raw: bytes, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RestrictedUnpickler(io.BytesIO(raw)).load()


@pytest.mark.parametrize(("labels", "message"), [
    ([[0, 1], [2]], "the labels are not a flat list of integers"),
    ([0, 1, 2], r"2 images but labels of shape \(3,\)"),  # one label too many
    ([[0], [1]], r"2 images but labels of shape \(2, 1\)"),  # a column of labels
])  # fmt: skip
def test_labels_that_are_not_a_flat_list_name_the_file(cifar10_dir, labels, message: str) -> None:
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "test_batch"
    write_batch(path, np.zeros((2, 3072), dtype=np.uint8), labels)
    with pytest.raises(DatasetFormatError, match=f"test_batch: {message}"):
        load_dataset("cifar10", data_dir)


def test_a_batch_file_that_holds_itself_is_named_once(cifar10_dir) -> None:
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "data_batch_1"
    batch: dict = {b"labels": [0]}
    batch[b"data"] = [batch]
    path.write_bytes(pickle.dumps(batch, protocol=PROTOCOL))
    with pytest.raises(DatasetFormatError) as error:
        load_dataset("cifar10", data_dir)
    assert str(error.value) == f"{path}: a container that contains itself"


def test_a_cifar100_batch_in_place_of_a_cifar10_one_says_so(cifar10_dir, tmp_path: Path) -> None:
    """The official CIFAR-100 files label by b'fine_labels' and b'coarse_labels', CIFAR-10's by
    b'labels': the error lists the keys found and which dataset they belong to, both ways."""
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "data_batch_2"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8), b"fine_labels": [0, 1], b"coarse_labels": [0, 1]}, protocol=PROTOCOL))
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar10", data_dir)
    assert str(info.value) == f"{path}: expected a dict with keys b'data' and b'labels', got keys b'coarse_labels', b'data', b'fine_labels' (a CIFAR-100 batch?)"
    path = tmp_path / "cifar-100-python" / "train"
    write_batch(path, np.zeros((2, 3072), np.uint8), [0, 1])
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar100", tmp_path)
    assert str(info.value) == f"{path}: expected a dict with keys b'data' and b'fine_labels', got keys b'batch_label', b'data', b'filenames', b'labels' (a CIFAR-10 batch?)"
    # a batch of the right dataset that lacks its images is no other dataset's; many keys are summed up
    path.write_bytes(pickle.dumps({b"fine_labels": [0, 1], **{f"k{i}".encode(): i for i in range(7)}}, protocol=PROTOCOL))
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar100", tmp_path)
    assert str(info.value) == f"{path}: expected a dict with keys b'data' and b'fine_labels', got keys b'fine_labels', b'k0', b'k1', b'k2', b'k3', b'k4' and 2 more"
    path.write_bytes(pickle.dumps({b"fine_labels": [0, 1], **{f"k{i}".encode(): i for i in range(5)}}, protocol=PROTOCOL))
    with pytest.raises(DatasetFormatError) as info:  # six keys: all shown
        load_dataset("cifar100", tmp_path)
    assert str(info.value) == f"{path}: expected a dict with keys b'data' and b'fine_labels', got keys b'fine_labels', b'k0', b'k1', b'k2', b'k3', b'k4'"


@pytest.mark.parametrize(("data", "got"), [
    (np.zeros((2, 3, 32, 32), np.uint8), "a uint8 array of shape (2, 3, 32, 32)"),  # images already reshaped
    (np.zeros((2, 3072), np.float32), "a float32 array of shape (2, 3072)"),  # already scaled to [0, 1]
    ([0] * 3072, "a list"),
])  # fmt: skip
def test_image_data_of_another_layout_says_what_it_is(cifar10_dir, data, got: str) -> None:
    data_dir, _ = cifar10_dir
    path = data_dir / "cifar-10-batches-py" / "test_batch"
    path.write_bytes(pickle.dumps({b"data": data, b"labels": [0, 1]}, protocol=PROTOCOL))
    with pytest.raises(DatasetFormatError) as info:
        load_dataset("cifar10", data_dir)
    assert str(info.value) == f"{path}: b'data' must be a uint8 array of shape (n, 3072), got {got}"


def test_cifar10_augmentation_is_torchvision_s_pad_4_crop_and_flip_before_normalizing(cifar10_dir) -> None:
    """The standard CIFAR recipe (He et al., 2016): RandomCrop(32, padding=4) on the raw image,
    black padding, then RandomHorizontalFlip(0.5), then Normalize. Every augmented image must be
    one of the 9 x 9 x 2 windows written here by hand from the raw pixels, and over many draws
    every offset and both flips turn up about evenly."""
    data_dir, batches = cifar10_dir
    ds = load_dataset("cifar10", data_dir)
    raw = batches[0][0][0].reshape(3, 32, 32)  # the first training image, as stored
    mean, std = np.array([0.4914, 0.4822, 0.4465])[:, None, None], np.array([0.2470, 0.2435, 0.2616])[:, None, None]
    padded = np.pad(raw.astype(np.float64) / 255, ((0, 0), (4, 4), (4, 4)))  # black: pixel value 0
    windows = {}
    for top in range(9):
        for left in range(9):
            crop = padded[:, top : top + 32, left : left + 32]
            for flip in (False, True):
                windows[top, left, flip] = torch.tensor(((crop[:, :, ::-1] if flip else crop) - mean) / std, dtype=torch.float32)
    n = 2000
    out = ds.augment(ds.x_train[:1].repeat(n, 1, 1, 1), torch.Generator().manual_seed(0))
    keys, stack = list(windows), torch.stack(list(windows.values()))
    distance, nearest = torch.cdist(out.flatten(1).double(), stack.flatten(1).double()).min(dim=1)
    assert distance.max() < 1e-3, "an augmented image that is no padded crop of the original"
    drawn = [keys[i] for i in nearest.tolist()]
    assert {(top, left) for top, left, _ in drawn} == {(top, left) for top in range(9) for left in range(9)}
    for axis in (0, 1):  # top and left offsets each uniform over 0..8: n/9 = 222 each, binomial sd 14
        counts = np.bincount([key[axis] for key in drawn], minlength=9)
        assert np.all(np.abs(counts - n / 9) < 70), counts
    assert abs(sum(flip for _, _, flip in drawn) / n - 0.5) < 0.05  # sd 0.011
