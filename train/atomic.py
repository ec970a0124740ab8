"""Atomic file writes: temp file in the same directory, fsync, rename. A crash leaves the old file."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from train.safefs import make_dir

_UMASK = os.umask(0)
os.umask(_UMASK)


FULL_BELOW = 64 * 1024  # bytes free under which a failed write is blamed on a full disk


class DiskFull(OSError):
    """A write hit a full disk (or quota). The old file is intact; the trial fails as disk_full."""

    failure_kind = "disk_full"

    def __init__(self, path: Path, cause: BaseException) -> None:
        super().__init__(errno.ENOSPC, f"disk full writing {path} ({type(cause).__name__}: "
                         f"{str(cause).strip().splitlines()[0] if str(cause).strip() else ''}); the previous file "
                         "is intact: free space and rerun to resume", str(path))

    def __str__(self) -> str:
        return self.strerror


def _disk_full(err: BaseException, folder: Path) -> bool:
    """ENOSPC/EDQUOT, or a library that wraps it in its own error (torch.save raises RuntimeError)
    while the filesystem has next to nothing left."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < FULL_BELOW


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    path = Path(path)
    if not path.parent.is_dir():
        make_dir(path.parent)  # new directories are never group- or world-writable
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_UMASK)  # mkstemp makes 0600; readable as the umask allows, never writable by others
        os.replace(tmp, path)
    except Exception as err:
        full = _disk_full(err, path.parent)  # before the temp file's space is given back
        Path(tmp).unlink(missing_ok=True)
        if full and not isinstance(err, DiskFull):
            raise DiskFull(path, err) from err
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text.encode()))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def atomic_save_npz(path: str | Path, **arrays: Any) -> None:
    import numpy as np  # heavy: loads numpy; only this path needs it

    atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_torch_save(path: str | Path, obj: Any) -> None:
    import torch  # heavy: loads torch (seconds); only this path needs it

    atomic_write(path, lambda f: torch.save(obj, f))
