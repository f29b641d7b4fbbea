"""Writing a file so that it appears under its name only once complete: the project's one way to.

A worker killed mid-write, a reader in another process (the web server serving a stimulus or a
report) or a second writer never sees half a file under the real name: the data goes to a temporary
file in the same folder (same file system, so the rename is atomic), is flushed and fsynced, and is
then renamed over the target. On any error the temporary file is removed.

Temporary names are ``.<name>.<random>.tmp``; ``ratings.stimulus_images`` relies on that pattern to
clean up what a killed worker left behind.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

__all__ = ["FILE_MODE", "atomic_write", "write_bytes_atomic", "write_text_atomic"]

#: Mode of written files: readable by everyone who can reach the folder. mkstemp alone makes them
#: private (0600), but a stimulus or a report is read by the web server, often another user on
#: another machine than the worker that wrote it.
FILE_MODE = 0o644


@contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb", *, encoding: str | None = None,
                 newline: str | None = None) -> Iterator[IO]:
    """Open a temporary file beside ``path`` for writing; on a clean exit it replaces ``path``.

    Parameters
    ----------
    path : path
        The file to write; its folder is created if missing.
    mode : {"wb", "w"}
        Binary or text.
    encoding, newline : str, optional
        As for :func:`open`, text mode only.

    Yields
    ------
    file object
        Write to it inside the ``with`` block; it is flushed, fsynced, closed and renamed after.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, mode, encoding=encoding, newline=newline) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` with :func:`atomic_write`; returns the path."""
    with atomic_write(path) as fh:
        fh.write(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` (encoded, newlines as given) to ``path`` with :func:`atomic_write`."""
    return write_bytes_atomic(path, text.encode(encoding))
