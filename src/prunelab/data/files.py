"""File helpers shared by the dataset loaders: atomic writes, downloads and error messages."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from prunelab.data.registry import DatasetNotFoundError

_CHUNK = 1 << 20


def not_found(dataset: str, path: Path, what: str = "") -> DatasetNotFoundError:
    """The error for a missing dataset file or folder, saying where it was looked for and how to get it.

    >>> str(not_found("mnist", Path("/data/mnist/train-images-idx3-ubyte")))[:56]
    'mnist: /data/mnist/train-images-idx3-ubyte not found. Pa'
    """
    suffix = f" ({what})" if what else ""
    return DatasetNotFoundError(
        f"{dataset}: {path}{suffix} not found. Pass download=True (CLI: --set data.download=true) "
        f"to fetch it, or put the files there (the data folder is set by data_dir or $PRUNELAB_DATA)."
    )


@contextlib.contextmanager
def atomic_write(path: Path) -> Iterator[BinaryIO]:
    """Open a temporary file next to ``path`` for binary writing; it replaces ``path`` only on success.

    Readers therefore never see a half-written file, even if the writer is killed.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "x.bin"
    >>> with atomic_write(target) as f:
    ...     _ = f.write(b"abc")
    >>> target.read_bytes()
    b'abc'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Not tempfile.mkstemp: its files are private (0600); a data cache should follow the umask.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            yield f
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise


def md5sum(path: Path) -> str:
    """Hex MD5 of a file (the official dataset checksums are MD5; this is integrity, not security)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download(url: str, dest: Path, md5: str) -> None:
    """Fetch ``url`` to ``dest`` atomically, refusing the file if its MD5 is not ``md5``.

    >>> download("https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    ...          Path("/tmp/cifar-10-python.tar.gz"), "c58f30108f718f92721af3b95e74349a")  # doctest: +SKIP
    """
    print(f"downloading {url} -> {dest}", file=sys.stderr)
    digest = hashlib.md5(usedforsecurity=False)
    with atomic_write(dest) as f, urllib.request.urlopen(url, timeout=60) as response:
        for block in iter(lambda: response.read(_CHUNK), b""):
            digest.update(block)
            f.write(block)
        if digest.hexdigest() != md5:
            raise OSError(f"{url}: MD5 {digest.hexdigest()} does not match the expected {md5}")


def download_and_extract(url: str, md5: str, data_dir: Path, folder: str) -> None:
    """Download the tar archive at ``url`` and extract its top-level ``folder`` into ``data_dir``.

    The folder appears only once fully extracted; the archive is deleted afterwards.
    """
    archive = data_dir / url.rsplit("/", 1)[-1]
    download(url, archive, md5)
    staging = Path(tempfile.mkdtemp(dir=data_dir, prefix=f".{folder}."))
    try:
        with tarfile.open(archive) as tar:
            if not hasattr(tarfile, "data_filter"):  # Python < 3.10.12 cannot refuse unsafe members
                raise RuntimeError(f"extracting {archive} safely needs Python 3.10.12 or later")
            tar.extractall(staging, filter="data")
        os.replace(staging / folder, data_dir / folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        archive.unlink(missing_ok=True)
