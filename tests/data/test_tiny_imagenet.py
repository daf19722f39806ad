"""Tiny ImageNet from a small tree of the official layout: classes in sorted order, the val split
as the test split, training-set normalization, the decoded cache, errors, download of a .zip."""

from __future__ import annotations

import hashlib
import shutil
import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from prunelab.data import AUGMENTED, DatasetFormatError, DatasetNotFoundError, load_dataset
from prunelab.data import tiny_imagenet
from prunelab.data.augment import random_resized_crop_flip

# wnids.txt lists them in this (unsorted) order; classes are numbered in sorted order.
WNIDS = ["n09193705", "n01443537", "n04067472"]
CLASS = {"n01443537": 0, "n04067472": 1, "n09193705": 2}
# val_annotations.txt: file name, WordNet id, then a bounding box
VAL = [("val_0.JPEG", "n04067472"), ("val_1.JPEG", "n09193705"), ("val_2.JPEG", "n01443537"), ("val_3.JPEG", "n04067472")]
REAL_JPEG = "val_3.JPEG"  # a true JPEG of one colour; the others are PNG data, so that their pixels are exact
JPEG_COLOUR = (200, 100, 50)
GREY = "n04067472_1.JPEG"  # a greyscale image, which must become RGB


def write_tree(root: Path) -> dict[str, np.ndarray]:
    """A tiny-imagenet-200 folder under ``root`` with two 64x64 training images per class and
    four val images; returns the uint8 pixels (N, 3, 64, 64) expected for each split, in the
    loader's order (train: by sorted class, then file name; val: as annotated)."""
    rng = np.random.default_rng(0)
    folder = root / "tiny-imagenet-200"
    folder.mkdir(parents=True)
    (folder / "wnids.txt").write_text("".join(f"{wnid}\n" for wnid in WNIDS))
    train = {}
    for wnid in WNIDS:
        (folder / "train" / wnid / "images").mkdir(parents=True)
        (folder / "train" / wnid / f"{wnid}_boxes.txt").write_text(f"{wnid}_0.JPEG\t0\t0\t63\t63\n")
        for i in range(2):
            name = f"{wnid}_{i}.JPEG"
            if name == GREY:
                grey = rng.integers(0, 256, (64, 64), dtype=np.uint8)
                Image.fromarray(grey, "L").save(folder / "train" / wnid / "images" / name, format="PNG")
                train[name] = np.stack([grey] * 3)
            else:
                pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
                Image.fromarray(pixels, "RGB").save(folder / "train" / wnid / "images" / name, format="PNG")
                train[name] = pixels.transpose(2, 0, 1)
    (folder / "val" / "images").mkdir(parents=True)
    val = []
    for name, _ in VAL:
        if name == REAL_JPEG:
            Image.new("RGB", (64, 64), JPEG_COLOUR).save(folder / "val" / "images" / name, format="JPEG", quality=95)
            val.append(np.broadcast_to(np.array(JPEG_COLOUR, dtype=np.uint8)[:, None, None], (3, 64, 64)))
        else:
            pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
            Image.fromarray(pixels, "RGB").save(folder / "val" / "images" / name, format="PNG")
            val.append(pixels.transpose(2, 0, 1))
    (folder / "val" / "val_annotations.txt").write_text("".join(f"{name}\t{wnid}\t0\t0\t63\t63\n" for name, wnid in VAL))
    (folder / "test" / "images").mkdir(parents=True)  # unlabelled: not read
    Image.new("RGB", (64, 64)).save(folder / "test" / "images" / "test_0.JPEG", format="JPEG")
    order = ["n01443537_0.JPEG", "n01443537_1.JPEG", "n04067472_0.JPEG", "n04067472_1.JPEG", "n09193705_0.JPEG", "n09193705_1.JPEG"]
    return {"train": np.stack([train[name] for name in order]), "test": np.stack(val)}


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, dict[str, np.ndarray]]:
    return tmp_path, write_tree(tmp_path)


def normalized(pixels: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    return torch.tensor((pixels / 255 - mean[:, None, None]) / std[:, None, None], dtype=torch.float32)


def test_shapes_sorted_class_indices_and_training_set_normalization(tree) -> None:
    data_dir, pixels = tree
    ds = load_dataset("tiny_imagenet", data_dir)
    assert ds.name == "tiny_imagenet" and ds.num_classes == 3 and ds.input_shape == (3, 64, 64)
    assert ds.x_train.shape == (6, 3, 64, 64) and ds.x_test.shape == (4, 3, 64, 64)
    assert ds.x_train.dtype == torch.float32 and ds.y_train.dtype == torch.int64 and ds.y_test.dtype == torch.int64
    # n01443537 < n04067472 < n09193705, whatever the order of wnids.txt
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2]
    assert ds.y_test.tolist() == [1, 2, 0, 1] == [CLASS[wnid] for _, wnid in VAL]
    scaled = pixels["train"] / 255
    mean, std = scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))  # of the training pixels, the test ones unseen
    torch.testing.assert_close(ds.x_train, normalized(pixels["train"], mean, std))
    torch.testing.assert_close(ds.x_test[:3], normalized(pixels["test"][:3], mean, std))
    # The lossy JPEG: its colour within a few levels
    torch.testing.assert_close(ds.x_test[3], normalized(pixels["test"][3], mean, std), atol=3 / 255 / std.min(), rtol=0)
    grey = ds.x_train[3] * torch.tensor(std, dtype=torch.float32).view(3, 1, 1) + torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    torch.testing.assert_close(grey[0], grey[1])
    torch.testing.assert_close(grey[1], grey[2])


def test_augmentation_is_seed_002s_random_resized_crop_and_flip(tree) -> None:
    """Crops resized back to 64x64 (tests/data/test_augment.py checks them against F.interpolate):
    the batch the augmentation gives is that function's, for the same generator state."""
    data_dir, _ = tree
    ds = load_dataset("tiny_imagenet", data_dir)
    assert "tiny_imagenet" in AUGMENTED
    out = ds.augment(ds.x_train, torch.Generator().manual_seed(0))
    assert torch.equal(out, random_resized_crop_flip(ds.x_train, torch.Generator().manual_seed(0)))
    assert not torch.equal(out, ds.x_train)


def test_channel_stats_over_more_images_than_one_chunk_of_squares_holds() -> None:
    images = np.random.default_rng(1).integers(0, 256, (5000, 3, 2, 2), dtype=np.uint8)
    scaled = images / 255
    mean, std = tiny_imagenet.channel_stats(images)
    torch.testing.assert_close(mean, torch.tensor(scaled.mean(axis=(0, 2, 3)), dtype=torch.float32))
    torch.testing.assert_close(std, torch.tensor(scaled.std(axis=(0, 2, 3)), dtype=torch.float32))


def test_the_decoded_images_are_kept_and_read_without_the_jpegs(tree) -> None:
    data_dir, _ = tree
    first = load_dataset("tiny_imagenet", data_dir)
    assert (data_dir / "tiny_imagenet.npz").exists()
    shutil.rmtree(data_dir / "tiny-imagenet-200")
    second = load_dataset("tiny_imagenet", data_dir)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert torch.equal(getattr(first, field), getattr(second, field)), field
    assert second.num_classes == 3


def _cache(data_dir: Path) -> dict[str, np.ndarray]:
    with np.load(data_dir / "tiny_imagenet.npz") as cached:
        return dict(cached)


@pytest.mark.parametrize(
    "damage",
    [
        lambda raw, arrays: raw[: len(raw) // 2],  # a half-written file
        lambda raw, arrays: b"",
        lambda raw, arrays: b"not a cache",
        lambda raw, arrays: {**arrays, "x_train": arrays["x_train"][:, :, :32, :32]},  # images of another size
        lambda raw, arrays: {**arrays, "y_test": arrays["y_test"][:-1]},  # a label missing
        lambda raw, arrays: {**arrays, "y_train": arrays["y_train"] + 1},  # labels counted from 1: the last one past the classes
        lambda raw, arrays: {**arrays, "x_test": arrays["x_test"].astype(np.float32)},  # not uint8 pixels
        lambda raw, arrays: {key: value for key, value in arrays.items() if key != "wnids"},
        lambda raw, arrays: {**arrays, "wnids": np.array(["n01", "n02", "n03"])},  # of other classes than wnids.txt: stale
        lambda raw, arrays: arrays["x_train"],  # one array saved as .npy under the cache's name
    ],
    ids=["truncated", "empty", "text", "image-size", "label-count", "label-range", "float-pixels", "no-wnids", "other-classes", "npy"],
)
def test_a_damaged_or_stale_cache_is_not_trusted_but_decoded_again(tree, damage) -> None:
    data_dir, _ = tree
    first = load_dataset("tiny_imagenet", data_dir)
    cache = data_dir / "tiny_imagenet.npz"
    damaged = damage(cache.read_bytes(), _cache(data_dir))
    if isinstance(damaged, bytes):
        cache.write_bytes(damaged)
    else:
        with open(cache, "wb") as f:
            np.save(f, damaged) if isinstance(damaged, np.ndarray) else np.savez(f, **damaged)
    with pytest.warns(UserWarning, match="tiny_imagenet.npz is not a valid Tiny ImageNet cache .*; decoding the images again") as warned:
        again = load_dataset("tiny_imagenet", data_dir)
    assert [warning.filename for warning in warned] == [__file__]  # the line that loads the data
    assert torch.equal(again.x_train, first.x_train) and torch.equal(again.y_test, first.y_test)
    assert _cache(data_dir)["x_train"].shape == (6, 3, 64, 64)  # written anew


def test_a_damaged_cache_without_the_images_is_an_error_not_data(tree) -> None:
    data_dir, _ = tree
    load_dataset("tiny_imagenet", data_dir)
    cache = data_dir / "tiny_imagenet.npz"
    cache.write_bytes(cache.read_bytes()[:1000])
    shutil.rmtree(data_dir / "tiny-imagenet-200")
    with pytest.warns(UserWarning, match="not a valid Tiny ImageNet cache"), pytest.raises(DatasetNotFoundError, match="wnids.txt not found"):
        load_dataset("tiny_imagenet", data_dir)


def test_a_missing_folder_says_where_it_was_looked_for_and_how_to_download_it(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match=rf"^tiny_imagenet: {tmp_path / 'tiny-imagenet-200' / 'wnids.txt'} not found\. Pass download=True"):
        load_dataset("tiny_imagenet", tmp_path)
    assert list(tmp_path.iterdir()) == []  # no cache of nothing


@pytest.mark.parametrize(
    ("remove", "named"),
    [("val/val_annotations.txt", "val_annotations.txt"), ("val/images/val_2.JPEG", "val_2.JPEG"), ("train/n04067472", "n04067472/images")],
)
def test_a_missing_file_is_named(tree, remove: str, named: str) -> None:
    data_dir, _ = tree
    path = data_dir / "tiny-imagenet-200" / remove
    shutil.rmtree(path) if path.is_dir() else path.unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"^tiny_imagenet: .*{named} not found"):
        load_dataset("tiny_imagenet", data_dir)


def test_files_beside_the_class_folders_and_blank_annotation_lines_are_no_data(tree) -> None:
    """A .DS_Store among the class folders is no class; a blank line in val_annotations.txt
    (an editor's trailing one) is no image."""
    data_dir, _ = tree
    folder = data_dir / "tiny-imagenet-200"
    (folder / "train" / ".DS_Store").write_bytes(b"\x00")
    annotations = folder / "val" / "val_annotations.txt"
    lines = annotations.read_text().splitlines(keepends=True)
    annotations.write_text("".join(lines[:2]) + "\n" + "".join(lines[2:]) + "\n")
    ds = load_dataset("tiny_imagenet", data_dir)
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2] and ds.y_test.tolist() == [CLASS[wnid] for _, wnid in VAL]


def test_a_class_wnids_txt_does_not_list_is_an_error_naming_the_files(tree) -> None:
    data_dir, _ = tree
    folder = data_dir / "tiny-imagenet-200"
    (folder / "train" / "n99999999" / "images").mkdir(parents=True)
    with pytest.raises(DatasetFormatError, match=r"train/n99999999: 'n99999999' is not one of the 3 classes of .*wnids\.txt"):
        load_dataset("tiny_imagenet", data_dir)
    shutil.rmtree(folder / "train" / "n99999999")
    annotations = folder / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_4.JPEG\tn99999999\t0\t0\t63\t63\n")
    with pytest.raises(DatasetFormatError, match=r"val_annotations\.txt, line 5: 'n99999999' is not one of the 3 classes of .*wnids\.txt"):
        load_dataset("tiny_imagenet", data_dir)


def _png_header(width: int, height: int) -> bytes:
    """A PNG that claims the given size: its signature and header chunk, no pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (lambda raw: b"this is not an image", "not a readable image"),
        (lambda raw: raw[: len(raw) // 2], "not a readable image"),  # truncated: fails in the decoder, not at its header
        (lambda raw: None, "a 32x64 image; Tiny ImageNet's are 64x64"),
        (lambda raw: _png_header(20_000, 20_000), r"not a readable image \(Image size \(400000000 pixels\) exceeds limit"),  # Pillow's bomb check
    ],
    ids=["garbage", "truncated", "size", "bomb"],
)
def test_an_image_that_cannot_be_used_is_an_error_naming_it(tree, content, message: str) -> None:
    data_dir, _ = tree
    path = data_dir / "tiny-imagenet-200" / "val" / "images" / REAL_JPEG
    raw = content(path.read_bytes())
    if raw is None:
        Image.new("RGB", (32, 64)).save(path, format="JPEG")
    else:
        path.write_bytes(raw)
    with pytest.raises(DatasetFormatError, match=rf"^{path}: {message}"):
        load_dataset("tiny_imagenet", data_dir)
    assert not (data_dir / "tiny_imagenet.npz").exists()


def test_download_fetches_and_extracts_the_zip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    pixels = write_tree(tmp_path / "source")
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        for path in sorted((tmp_path / "source").rglob("*")):
            zip_file.write(path, path.relative_to(tmp_path / "source").as_posix())
    monkeypatch.setattr(tiny_imagenet, "URL", archive.as_uri())
    monkeypatch.setattr(tiny_imagenet, "MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    ds = load_dataset("tiny_imagenet", data_dir, download=True)
    assert f"downloading {archive.as_uri()}" in capsys.readouterr().err
    assert sorted(p.name for p in data_dir.iterdir()) == ["tiny-imagenet-200", "tiny_imagenet.npz"]  # the archive removed
    assert ds.y_train.tolist() == [0, 0, 1, 1, 2, 2] and ds.y_test.tolist() == [1, 2, 0, 1]
    scaled = pixels["train"] / 255
    torch.testing.assert_close(ds.x_train, normalized(pixels["train"], scaled.mean(axis=(0, 2, 3)), scaled.std(axis=(0, 2, 3))))


@pytest.mark.parametrize("remove", ["val/val_annotations.txt", "val/images/val_2.JPEG"])
def test_download_over_an_incomplete_folder_says_to_remove_it(tree, remove: str) -> None:
    data_dir, _ = tree
    (data_dir / "tiny-imagenet-200" / remove).unlink()
    with pytest.raises(DatasetNotFoundError, match=rf"{remove} not found in an incomplete .*tiny-imagenet-200; remove the folder"):
        load_dataset("tiny_imagenet", data_dir, download=True)


@pytest.mark.parametrize(
    ("file", "text", "message"),
    [
        ("wnids.txt", "", r"wnids\.txt: no WordNet ids"),
        ("wnids.txt", "n01443537\nn04067472\nn01443537\n", r"wnids\.txt: \['n01443537'\] appear more than once"),
        ("val/val_annotations.txt", "val_0.JPEG n04067472\n", r"val_annotations\.txt, line 1: expected a file name and a WordNet id separated by a tab"),
    ],
    ids=["empty-wnids", "repeated-wnid", "no-tab"],
)
def test_a_malformed_list_names_the_file(tree, file: str, text: str, message: str) -> None:
    data_dir, _ = tree
    (data_dir / "tiny-imagenet-200" / file).write_text(text)
    with pytest.raises(DatasetFormatError, match=message):
        load_dataset("tiny_imagenet", data_dir)
