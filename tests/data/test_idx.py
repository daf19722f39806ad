"""MNIST / Fashion-MNIST loading from hand-written IDX files."""

from __future__ import annotations

import gzip
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from prunelab.data import DatasetNotFoundError, load_dataset
from prunelab.data.idx import read_idx
from prunelab.data.registry import DatasetFormatError

FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    header = struct.pack(">HBB", 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.tobytes()


def write_idx_dataset(folder: Path, gz: bool, n_train: int = 5, n_test: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    arrays = {
        FILES[0]: rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        FILES[1]: rng.integers(0, 10, n_train, dtype=np.uint8),
        FILES[2]: rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        FILES[3]: rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    folder.mkdir(parents=True)
    for name, array in arrays.items():
        data = idx_bytes(array)
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return arrays


def expected_inputs(images: np.ndarray, mean: float, std: float) -> torch.Tensor:
    return torch.tensor((images.astype(np.float64) / 255 - mean) / std, dtype=torch.float32).unsqueeze(1)


def test_mnist_from_plain_files(tmp_path: Path) -> None:
    arrays = write_idx_dataset(tmp_path / "mnist", gz=False)
    ds = load_dataset("mnist", tmp_path)
    assert ds.name == "mnist" and ds.num_classes == 10 and ds.augment is None
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64
    torch.testing.assert_close(ds.x_train, expected_inputs(arrays[FILES[0]], 0.1307, 0.3081))
    torch.testing.assert_close(ds.x_test, expected_inputs(arrays[FILES[2]], 0.1307, 0.3081))
    assert ds.y_train.tolist() == arrays[FILES[1]].tolist()
    assert ds.y_test.tolist() == arrays[FILES[3]].tolist()
    # Pixel 0 and 255 map to the ends of the normalized range.
    assert ds.x_train.min() >= (0 - 0.1307) / 0.3081 - 1e-6
    assert ds.x_train.max() <= (1 - 0.1307) / 0.3081 + 1e-6


def test_fashion_mnist_from_gz_files(tmp_path: Path) -> None:
    arrays = write_idx_dataset(tmp_path / "fashion_mnist", gz=True)
    ds = load_dataset("fashion_mnist", tmp_path)
    assert ds.input_shape == (1, 28, 28)
    torch.testing.assert_close(ds.x_train, expected_inputs(arrays[FILES[0]], 0.2860, 0.3530))
    assert ds.y_test.tolist() == arrays[FILES[3]].tolist()


@pytest.mark.parametrize(
    ("code", "data", "values"),
    [
        (0x08, b"\xff\x01", [255, 1]),  # unsigned byte
        (0x09, b"\xff\x01", [-1, 1]),  # signed byte
        (0x0B, b"\x01\x02\xff\xfe", [258, -2]),  # big-endian int16: 0x0102, 0xfffe
        (0x0C, b"\x00\x01\x11\x70\xff\xff\xff\xfe", [70000, -2]),  # int32: 0x00011170
        (0x0D, b"\x3f\xc0\x00\x00\xc1\x20\x00\x00", [1.5, -10.0]),  # IEEE float32
        (0x0E, b"\x3f\xf8" + bytes(6) + b"\xc0\x24" + bytes(6), [1.5, -10.0]),  # IEEE float64
    ],
)
def test_read_idx_decodes_every_type_code_big_endian(tmp_path: Path, code: int, data: bytes, values: list) -> None:
    path = tmp_path / "values-idx1"
    path.write_bytes(struct.pack(">HBBI", 0, code, 1, 2) + data)
    decoded = read_idx(path)
    assert decoded.tolist() == values and decoded.dtype.itemsize == len(data) // 2


@pytest.mark.parametrize(
    "data, message",
    [
        (b"\x00\x01\x08\x01" + struct.pack(">I", 2) + b"\x01\x02", "not an IDX file"),  # bad magic
        (b"\x00\x00\x07\x01" + struct.pack(">I", 2) + b"\x01\x02", "not an IDX file"),  # unknown type code
        (b"\x00\x00\x08\x00\x07", "not an IDX file"),  # no dimensions
        (b"\x00\x00\x08\x03\x00\x00", "truncated IDX header"),
        (b"\x00\x00\x08", "3 bytes is too short"),
        # Header says 5 labels, the file holds 2.
        (b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x01\x02", "header promises shape (5,)"),
        # Header says 2 labels, the file holds 3.
        (b"\x00\x00\x08\x01" + struct.pack(">I", 2) + b"\x01\x02\x03", "header promises shape (2,) (10 bytes) but the file has 11 bytes"),
    ],
)
def test_corrupt_idx_names_the_file(tmp_path: Path, data: bytes, message: str) -> None:
    path = tmp_path / "train-labels-idx1-ubyte"
    path.write_bytes(data)
    with pytest.raises(DatasetFormatError, match="train-labels-idx1-ubyte") as info:
        read_idx(path)
    assert message in str(info.value)


def test_truncated_gz_names_the_file(tmp_path: Path) -> None:
    arrays = write_idx_dataset(tmp_path / "mnist", gz=True)
    path = tmp_path / "mnist" / f"{FILES[0]}.gz"
    path.write_bytes(gzip.compress(idx_bytes(arrays[FILES[0]]))[:-20])
    with pytest.raises(DatasetFormatError, match=str(path)):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize("labels", [np.zeros(4, dtype=np.uint8), np.zeros((5, 1), dtype=np.uint8)], ids=["count", "rank"])
def test_image_and_label_counts_must_match(tmp_path: Path, labels: np.ndarray) -> None:
    write_idx_dataset(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / FILES[1]).write_bytes(idx_bytes(labels))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{FILES[1]}: expected 5 labels, got shape {labels.shape}")):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize(
    ("labels", "code", "message"),
    [
        (np.array([1.7, 2.2, 0, 1, 2], dtype=">f8"), 0x0E, "labels must be integers, got >f8"),
        (np.array([0, 1, 2, 3, 200], dtype=np.uint8), 0x08, r"labels must lie in \[0, 10\), got 0..200"),
    ],
)
def test_labels_that_are_not_classes_name_the_file(tmp_path: Path, labels, code, message) -> None:
    write_idx_dataset(tmp_path / "mnist", gz=False)
    path = tmp_path / "mnist" / FILES[1]
    path.write_bytes(idx_bytes(labels, code))
    with pytest.raises(DatasetFormatError, match=message) as info:
        load_dataset("mnist", tmp_path)
    assert str(path) in str(info.value)


def test_missing_folder_says_where_and_how(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("mnist", tmp_path)
    assert isinstance(info.value, FileNotFoundError)
    message = str(info.value)
    assert str(tmp_path / "mnist" / "train-images-idx3-ubyte") in message
    assert "download=True" in message and "data.download=true" in message


def test_one_missing_file_is_named(tmp_path: Path) -> None:
    write_idx_dataset(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / FILES[3]).unlink()
    with pytest.raises(DatasetNotFoundError, match=re.escape(f"{FILES[3]} (or .gz) not found")):
        load_dataset("mnist", tmp_path)


@pytest.mark.parametrize(("file", "array", "code"), [
    (FILES[0], np.zeros((5, 14, 14), dtype=np.uint8), 0x08),  # images of another size
    (FILES[2], np.zeros((0, 28, 28), dtype=np.uint8), 0x08),  # no test images
    (FILES[0], np.zeros((5, 28, 28), dtype=">f4"), 0x0D),  # float pixels, whose scale is unknown
])  # fmt: skip
def test_images_that_are_not_28_by_28_uint8_or_none_name_the_file(tmp_path: Path, file: str, array: np.ndarray, code: int) -> None:
    write_idx_dataset(tmp_path / "mnist", gz=False)
    (tmp_path / "mnist" / file).write_bytes(idx_bytes(array, code))
    if file == FILES[2]:
        (tmp_path / "mnist" / FILES[3]).write_bytes(idx_bytes(np.zeros(0, dtype=np.uint8)))
    with pytest.raises(DatasetFormatError, match=re.escape(f"{file}: expected uint8 images (N, 28, 28), N > 0, got {array.dtype} of shape {array.shape}")):
        load_dataset("mnist", tmp_path)


def test_download_fetches_only_the_missing_files_from_the_official_mirror(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file present plain or as .gz is kept; a missing one is fetched as .gz, checked against
    the MD5 that torchvision also lists for it."""
    import prunelab.data.idx as idx

    folder = tmp_path / "mnist"
    arrays = write_idx_dataset(folder, gz=False)
    (folder / f"{FILES[0]}.gz").write_bytes(gzip.compress((folder / FILES[0]).read_bytes()))
    (folder / FILES[0]).unlink()
    (folder / FILES[1]).unlink()
    fetched = []

    def fake_download(url: str, dest: Path, md5: str) -> None:
        fetched.append((url, dest, md5))
        dest.write_bytes(gzip.compress(idx_bytes(arrays[FILES[1]])))

    monkeypatch.setattr(idx, "download", fake_download)
    ds = load_dataset("mnist", tmp_path, download=True)
    assert fetched == [("https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
                        folder / "train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432")]  # fmt: skip
    assert ds.y_train.tolist() == arrays[FILES[1]].tolist()


def test_gzip_compressed_files_without_the_gz_name_are_read(tmp_path: Path) -> None:
    """Compressed bytes under the plain name (a browser that dropped the .gz) read as the IDX
    inside: gzip streams start with 0x1f 0x8b, IDX files with 0x00 0x00, so the two cannot be confused."""
    folder = tmp_path / "mnist"
    arrays = write_idx_dataset(folder, gz=True)
    for name in FILES:
        (folder / f"{name}.gz").rename(folder / name)
    ds = load_dataset("mnist", tmp_path)
    torch.testing.assert_close(ds.x_train, expected_inputs(arrays[FILES[0]], 0.1307, 0.3081))
    assert ds.y_test.tolist() == arrays[FILES[3]].tolist()


def test_plain_files_under_the_gz_name_are_read(tmp_path: Path) -> None:
    """The other way round: a browser that decompressed the download while saving it kept the
    .gz name. The content decides, as the two magic numbers cannot be confused."""
    folder = tmp_path / "mnist"
    arrays = write_idx_dataset(folder, gz=False)
    for name in FILES:
        (folder / name).rename(folder / f"{name}.gz")
    ds = load_dataset("mnist", tmp_path)
    torch.testing.assert_close(ds.x_train, expected_inputs(arrays[FILES[0]], 0.1307, 0.3081))
    assert ds.y_test.tolist() == arrays[FILES[3]].tolist()


def test_a_wrong_magic_number_says_what_an_idx_file_starts_with(tmp_path: Path) -> None:
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(20))  # an image saved under the IDX name
    with pytest.raises(DatasetFormatError, match=re.escape(f"{path}: not an IDX file (magic number 0x89504e47; expected 0x0000, a type code 0x08, 0x09, 0x0b, 0x0c, 0x0d, 0x0e and a dimension count of at least 1)")):
        read_idx(path)
