"""Replacing a file atomically, so that a reader or a crash sees the old or the new content,
never a half-written file (checkpoints, exported policies, the episode store's index)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it; put it back at once
    os.umask(mask)
    return mask


def fsync_dir(path: str | Path) -> None:
    """Flush a directory's entries (a rename or a new name in it) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary file beside ``path`` for the block to write (by name).

    When the block ends normally the temporary file is fsynced, renamed over ``path`` and the
    directory fsynced, so the new content survives a power cut, not only a killed process;
    when it raises (Ctrl-C included), the temporary file is removed and ``path`` is left as it
    was. It lives in ``path``'s directory (created if missing) because only a rename within
    one file system is atomic, and has a unique hidden name so two writers never share it.
    ``fsync=False`` skips both fsyncs: still atomic for a killed process, not for a power cut.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp creates the file private (0600); the result should get the permissions any new
    # file gets (0666 minus the umask), e.g. a policy file other users and ROS can read.
    os.fchmod(fd, 0o666 & ~_umask())
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)  # flushes the file's data whichever descriptor wrote it
            finally:
                os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if fsync:
        fsync_dir(path.parent)  # the rename itself is durable only once the directory is


def atomic_link(src: str | Path, dst: str | Path) -> Path:
    """Make ``dst`` another name of the file ``src`` (a hard link; a copy where the file
    system has none), replacing ``dst`` atomically: a reader sees the old or the new file."""
    src, dst = Path(src), Path(dst)
    with atomic_write(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:  # no hard links here (some network or FAT file systems)
            shutil.copy2(src, tmp)
    return dst
