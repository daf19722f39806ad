"""File helpers shared by the dataset loaders: downloads, caches and error messages."""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import warnings
import zipfile
from pathlib import Path, PurePosixPath

import numpy as np

from prunelab.atomic import atomic_write
from prunelab.data.registry import DatasetNotFoundError

_CHUNK = 1 << 20


def not_found(dataset: str, path: Path, what: str = "") -> DatasetNotFoundError:
    """The error for a missing dataset file or folder, saying where it was looked for and how to get it.

    >>> str(not_found("mnist", Path("/data/mnist/train-images-idx3-ubyte")))[:56]
    'mnist: /data/mnist/train-images-idx3-ubyte not found. Pa'
    """
    suffix = f" ({what})" if what else ""
    folder, data_dir = path.parent, path.parent.parent
    if any((data_dir / name).exists() for name in (path.name, f"{path.name}.gz")):  # data_dir names the dataset's own folder
        give = f", so give {data_dir.parent}" if data_dir.name == folder.name else f" (not {data_dir.name})"
        return DatasetNotFoundError(
            f"{dataset}: {path}{suffix} not found, but {data_dir} holds the files itself: the data folder (data_dir or "
            f"$PRUNELAB_DATA) holds them in a folder named {folder.name}{give}"
        )
    return DatasetNotFoundError(
        f"{dataset}: {path}{suffix} not found. Pass download=True (CLI: --set data.download=true) "
        f"to fetch it, or put the files there (the data folder is set by data_dir or $PRUNELAB_DATA)."
    )


def download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` atomically, refusing the file if its MD5 is not ``md5``.

    >>> download("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ...          Path("/tmp/cifar-10-python.tar.gz"), "c58f30108f718f92721af3b95e74349a")  # doctest: +SKIP
    """
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    digest = hashlib.md5(usedforsecurity=False)
    try:
        with atomic_write(dest) as f, urllib.request.urlopen(url, timeout=60) as response:
            for block in iter(lambda: response.read(_CHUNK), b""):
                digest.update(block)
                f.write(block)
            if digest.hexdigest() != md5:
                raise OSError(f"{url}: MD5 {digest.hexdigest()} does not match the expected {md5}")
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:  # their messages name neither the address nor the file
        raise OSError(f"cannot download {url} (for {dest}): {getattr(error, 'reason', error)}") from None


def download_and_extract(url: str, md5: str, data_dir: Path, folder: str) -> None:
    """Download the tar or ``.zip`` archive at ``url`` and extract its top-level ``folder`` into ``data_dir``.

    The folder appears only once fully extracted; the archive is deleted afterwards.
    """
    archive = data_dir / url.rsplit("/", 1)[-1]
    download(url, archive, md5)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{folder}."))
    try:
        if archive.suffix == ".zip":
            _extract_zip(archive, staging)
        else:
            with tarfile.open(archive) as tar:
                if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 cannot refuse unsafe members
                    raise RuntimeError(f"extracting {archive} safely needs Python 3.10.12 or later")
                tar.extractall(staging, filter="data")
        os.replace(staging / folder, data_dir / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)


def _extract_zip(archive: Path, staging: Path) -> None:
    """Extract ``archive`` into ``staging``, refusing it whole if a member would land outside:
    zipfile itself strips ``..`` and leading slashes, writing the member elsewhere than named."""
    with zipfile.ZipFile(archive) as zip_file:
        for name in zip_file.namelist():
            member = PurePosixPath(name)
            if member.is_absolute() or ".." in member.parts:
                raise zipfile.BadZipFile(f"{archive}: refusing the member {name!r}, which points outside the archive's folder")
        zip_file.extractall(staging)


# A folder the data cannot be kept in, though the data itself is good: read-only, not the
# user's, full.
_CANNOT_KEEP = {errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT}


#: What reading a damaged or foreign ``.npz`` cache raises (:func:`read_cache`).
CACHE_ERRORS = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def read_cache(path: Path, keys: tuple[str, ...]) -> dict[str, np.ndarray]:
    """The arrays ``keys`` of the ``.npz`` cache ``path``, read without unpickling anything; a
    file that is no such archive raises one of :data:`CACHE_ERRORS`."""
    with open(path, "rb") as f:  # closed here: numpy leaves its own file open when the archive is unreadable
        cached = np.load(f, allow_pickle=False)
        if not isinstance(cached, np.lib.npyio.NpzFile):
            raise ValueError("not an .npz archive")
        with cached:
            return {key: cached[key] for key in keys}


def save_cache(path: Path, arrays: dict[str, np.ndarray], dataset: str, again: str) -> None:
    """Write ``arrays`` to the ``.npz`` cache ``path`` atomically. A folder that cannot keep it
    (read-only, full) is a warning only: the data is still good, and ``again`` at every load."""
    try:
        with atomic_write(path) as f:
            np.savez(f, **arrays)
    except OSError as error:
        if error.errno not in _CANNOT_KEEP:  # e.g. a data_dir inside a file: a mistake to report
            raise
        warnings.warn(f"could not cache {dataset} as {path} ({error.strerror or error}); it is {again} at every load: "
                      "give a writable data.data_dir to keep it", stacklevel=4)  # fmt: skip
