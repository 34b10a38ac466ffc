"""Reading files defensively: regular files only, never a device or FIFO (which could hang or never end), never
through a symlink where one is not expected (submissions; release folders may hold symlinks to regular files, as
the Hugging Face cache does), with the size checked on the opened file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

MAX_TEXT_BYTES = 256 << 20


def human_size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class UnsafeFile(ValueError):
    """A path that is not a plain, readable file of acceptable size; the message names it."""


def open_regular(path: str | Path, *, root: str | Path | None = None, max_bytes: int = MAX_TEXT_BYTES,
                 follow_symlinks: bool = False) -> int:
    """An OS file descriptor for ``path`` after checking that it is a regular file (not a device, FIFO or folder,
    and not a symlink unless ``follow_symlinks``), inside ``root`` when given, and at most ``max_bytes`` long; it
    is opened non-blocking, so a FIFO never hangs the caller. The caller closes it."""
    path = Path(path)
    if root is not None:
        real_root = Path(root).resolve()
        real = path.resolve()
        if real != real_root and real_root not in real.parents:
            raise UnsafeFile(f"{path}: points outside {root}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | (0 if follow_symlinks else getattr(os, "O_NOFOLLOW", 0))
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if path.is_symlink():
            raise UnsafeFile(f"{path}: a symbolic link; give the file itself") from None
        raise UnsafeFile(f"{path}: cannot open ({exc.strerror})") from None
    info = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(info.st_mode):
        problem = "not a regular file" if not stat.S_ISDIR(info.st_mode) else "a folder, not a file"
    elif info.st_size > max_bytes:
        problem = f"{human_size(info.st_size)}, over the {human_size(max_bytes)} limit"
    if problem:
        os.close(fd)
        raise UnsafeFile(f"{path}: {problem}")
    return fd


def regular_file(path: str | Path, max_bytes: int = 1 << 62) -> Path:
    """``path``, after checking that it is (or links to) a regular file of at most ``max_bytes``: for readers that
    open a file by name (pyarrow), so that a FIFO or device in its place is refused instead of blocking."""
    os.close(open_regular(path, max_bytes=max_bytes, follow_symlinks=True))
    return Path(path)


def read_bytes_capped(path: str | Path, max_bytes: int = MAX_TEXT_BYTES, *, root: str | Path | None = None,
                      follow_symlinks: bool = False) -> bytes:
    """The bytes of a regular file of at most ``max_bytes`` (checked before and while reading)."""
    fd = open_regular(path, root=root, max_bytes=max_bytes, follow_symlinks=follow_symlinks)
    with os.fdopen(fd, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        data = f.read(size + 1)  # one byte more than announced: a file that grew is caught below
    if len(data) > min(size, max_bytes):
        raise UnsafeFile(f"{path}: over the {human_size(max_bytes)} limit")
    return data


def read_text_capped(path: str | Path, max_bytes: int = MAX_TEXT_BYTES, *, root: str | Path | None = None) -> str:
    """UTF-8 text of a regular file of at most ``max_bytes``."""
    try:
        return read_bytes_capped(path, max_bytes, root=root).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeFile(f"{path}: not UTF-8 text (byte {exc.start})") from None
