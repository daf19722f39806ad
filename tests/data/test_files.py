"""Downloads (through a file:// URL, so offline): atomic, MD5-checked, archives extracted whole."""

from __future__ import annotations

import gc
import hashlib
import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

import numpy as np

from prunelab.data.files import CACHE_ERRORS, download, download_and_extract, read_cache


def test_download_writes_the_file_when_the_md5_matches(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"\x00\x01" * 1000)
    dest = tmp_path / "out" / "copy.bin"
    download(source.as_uri(), dest, hashlib.md5(source.read_bytes()).hexdigest())
    assert dest.read_bytes() == source.read_bytes()


def test_a_wrong_md5_leaves_no_file(tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(b"payload")
    dest = tmp_path / "copy.bin"
    with pytest.raises(OSError, match="does not match the expected 0123"):
        download(source.as_uri(), dest, "0123")
    assert not dest.exists() and not list(tmp_path.glob(".copy.bin.*"))


def _archive(path: Path, members: dict[str, bytes]) -> str:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _zip(path: Path, members: dict[str, bytes]) -> str:
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_download_and_extract_puts_the_folder_in_place_and_removes_the_archive(kind: str, tmp_path: Path) -> None:
    source = tmp_path / "src" / f"data.{kind}"
    source.parent.mkdir()
    md5 = (_archive if kind == "tar.gz" else _zip)(source, {"batches/a": b"aa", "batches/sub/b": b"bb"})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    download_and_extract(source.as_uri(), md5, data_dir, "batches")
    assert (data_dir / "batches" / "a").read_bytes() == b"aa" and (data_dir / "batches" / "sub" / "b").read_bytes() == b"bb"
    assert sorted(p.name for p in data_dir.iterdir()) == ["batches"]  # no archive, no staging folder left


def test_an_archive_escaping_its_folder_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "evil.tar.gz"
    md5 = _archive(source, {"batches/a": b"aa", "../outside": b"x"})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(tarfile.TarError, match="outside"):
        download_and_extract(source.as_uri(), md5, data_dir, "batches")
    assert not (tmp_path / "outside").exists() and not (data_dir / "batches").exists()


def test_a_failed_download_names_the_address_and_leaves_no_file(tmp_path: Path) -> None:
    missing = (tmp_path / "elsewhere" / "data.tar.gz").as_uri()
    with pytest.raises(OSError, match=rf"^cannot download {missing} \(for {tmp_path / 'data.tar.gz'}\): \[Errno 2\] No such file"):
        download(missing, tmp_path / "data.tar.gz", "0" * 32)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(("dataset", "folder", "file"), [("cifar10", "cifar-10-batches-py", "data_batch_1"), ("mnist", "mnist", "train-images-idx3-ubyte.gz"),
                                                      ("tiny_imagenet", "tiny-imagenet-200", "wnids.txt")])
def test_a_data_folder_that_names_the_datasets_own_folder_says_which_to_give(tmp_path: Path, dataset, folder, file) -> None:
    from prunelab.data import DatasetNotFoundError, load_dataset

    (tmp_path / folder).mkdir()
    (tmp_path / folder / file).write_bytes(b"")
    with pytest.raises(DatasetNotFoundError, match=rf"holds the files itself: .* holds them in a folder named {folder}, so give {tmp_path}$"):
        load_dataset(dataset, tmp_path / folder)
    (tmp_path / folder).rename(tmp_path / "my-files")
    with pytest.raises(DatasetNotFoundError, match=rf"holds them in a folder named {folder} \(not my-files\)$"):
        load_dataset(dataset, tmp_path / "my-files")


@pytest.mark.parametrize("member", ["../outside", "batches/../../outside", "/outside"])
def test_a_zip_archive_escaping_its_folder_is_refused_not_silently_rewritten(tmp_path: Path, member: str) -> None:
    """zipfile would strip the ".." or the slash and write the member somewhere the name does not say."""
    source = tmp_path / "evil.zip"
    md5 = _zip(source, {"batches/a": b"aa", member: b"x"})
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with pytest.raises(zipfile.BadZipFile, match=f"refusing the member '{member}'"):
        download_and_extract(source.as_uri(), md5, data_dir, "batches")
    assert not (tmp_path / "outside").exists() and list(data_dir.iterdir()) == []


def test_a_half_written_cache_is_refused_and_its_file_closed(tmp_path: Path) -> None:
    """numpy leaves the file of an archive it cannot read open (a ResourceWarning, a descriptor held)."""
    path = tmp_path / "cache.npz"
    np.savez(path, x=np.arange(3))
    path.write_bytes(path.read_bytes()[:100])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with pytest.raises(CACHE_ERRORS):
            read_cache(path, ("x",))
        gc.collect()
    assert [str(warning.message) for warning in caught if issubclass(warning.category, ResourceWarning)] == []
