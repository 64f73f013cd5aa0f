"""One filesystem abstraction for everything the platform writes.

Paths are relative to a root URL: a local folder (`data/`) or an object store (`s3://bucket/x`)
through fsspec. Nothing else in the code builds absolute paths, so the root can move.
"""

from __future__ import annotations

import os
import posixpath
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import fsspec
from fsspec.implementations.local import LocalFileSystem


class Storage:
    """A root (local path or fsspec URL) and atomic file operations relative to it."""

    def __init__(self, root: str | os.PathLike[str]):
        root_str = os.fspath(root)
        if "://" not in root_str:
            root_str = str(Path(root_str).expanduser().resolve())
        self.fs, self._root = fsspec.core.url_to_fs(root_str)
        self.url = root_str
        self.is_local = isinstance(self.fs, LocalFileSystem)
        if self.is_local:
            os.makedirs(self._root, exist_ok=True)

    def __repr__(self) -> str:
        return f"Storage({self.url!r})"

    # ---- paths -------------------------------------------------------------------------
    def path(self, rel: str) -> str:
        """The full path (local) or fsspec path (remote) of a root-relative path."""
        if rel.startswith("/") or ".." in rel.split("/"):
            raise ValueError(f"storage paths are relative and stay inside the root: {rel!r}")
        return posixpath.join(self._root, rel) if not self.is_local else os.path.join(self._root, rel)

    def uri(self, rel: str) -> str:
        """A URL DuckDB and users can open: a plain path locally, `proto://...` otherwise."""
        full = self.path(rel)
        if self.is_local:
            return full
        proto = self.fs.protocol if isinstance(self.fs.protocol, str) else self.fs.protocol[0]
        return f"{proto}://{full}"

    def local_path(self, rel: str) -> Path:
        if not self.is_local:
            raise RuntimeError(f"{self.url} is not a local folder; open files through Storage.open")
        return Path(self.path(rel))

    # ---- reading -----------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.fs.exists(self.path(rel))

    def open(self, rel: str, mode: str = "rb") -> IO:
        return self.fs.open(self.path(rel), mode)

    def read_bytes(self, rel: str) -> bytes:
        with self.open(rel, "rb") as fh:
            return fh.read()

    def list(self, rel_dir: str, suffix: str = "") -> list[str]:
        """Root-relative paths of the files directly inside `rel_dir`, sorted."""
        full = self.path(rel_dir)
        if not self.fs.exists(full):
            return []
        names = []
        for entry in self.fs.ls(full, detail=False):
            name = posixpath.basename(entry.rstrip("/"))
            if name.endswith(suffix) and not name.startswith("."):
                names.append(f"{rel_dir.rstrip('/')}/{name}")
        return sorted(names)

    # ---- writing -----------------------------------------------------------------------
    @contextmanager
    def atomic_writer(self, rel: str) -> Iterator[IO[bytes]]:
        """Write to a temporary sibling, then rename over `rel`.

        A crash mid-write leaves the previous file intact and at worst a `.tmp-*` file,
        which readers ignore (they skip dot files).
        """
        final = self.path(rel)
        parent = posixpath.dirname(final) if not self.is_local else os.path.dirname(final)
        self.fs.makedirs(parent, exist_ok=True)
        tmp = (os.path.join if self.is_local else posixpath.join)(
            parent, f".tmp-{uuid.uuid4().hex}-{os.path.basename(final)}"
        )
        try:
            with self.fs.open(tmp, "wb") as fh:
                yield fh
                if self.is_local:
                    fh.flush()
                    os.fsync(fh.fileno())
            if self.is_local:
                os.replace(tmp, final)  # atomic on POSIX
            else:
                self.fs.mv(tmp, final)  # object stores publish whole objects
        except BaseException:
            if self.fs.exists(tmp):
                self.fs.rm(tmp)
            raise

    def write_bytes(self, rel: str, data: bytes) -> None:
        with self.atomic_writer(rel) as fh:
            fh.write(data)
