"""Files in a directory other users can reach (a sweep dir on a shared cluster filesystem).

ssh's StrictModes, applied to sweep dirs: what the product writes into or loads from must be the
user's own and writable by nobody else, else it is refused in one line (``Unsafe``, exit 2); a
symlink is never followed where a file is expected; readers open non-blocking and read only
regular files, so a FIFO or a device in place of a result names itself instead of hanging."""

from __future__ import annotations

import errno
import os
import pwd
import re
import stat
from pathlib import Path
from typing import BinaryIO

from configcheck import ConfigError

_UMASK = os.umask(0)
os.umask(_UMASK)
DIR_MODE = 0o755 & ~_UMASK  # never group- or world-writable, whatever the umask; readable as the umask allows
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC


SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")  # a sweep name or trial id: one path component


def safe_name(text: object) -> bool:
    """A whole-string match (``$`` would let ``"nl\\n"`` through): no slash, no leading dot."""
    return isinstance(text, str) and SAFE_NAME.fullmatch(text) is not None


class Unsafe(ConfigError):
    """A path the product would write into, resume from or load is not safely the user's own."""


class NotRegular(OSError):
    """A reader found something other than a regular file (a FIFO, a device, a symlink, a dir)."""


def _who(uid: int) -> str:
    try:
        return f"{pwd.getpwuid(uid).pw_name} (uid {uid})"
    except KeyError:
        return f"uid {uid}"


def problem(st: os.stat_result) -> str | None:
    """Why a file or dir with this lstat may not be trusted, or None when it is the user's own."""
    if st.st_uid != os.geteuid():
        return f"is owned by {_who(st.st_uid)}, not by you ({_who(os.geteuid())})"
    if st.st_mode & 0o022 and not stat.S_ISLNK(st.st_mode):
        who = " and ".join(w for w, bit in (("its group", 0o020), ("others", 0o002)) if st.st_mode & bit)
        return f"is writable by {who} (mode {stat.S_IMODE(st.st_mode):o}; chmod go-w it if it is yours)"
    return None


def check_dir(path: str | Path) -> None:
    """Raise Unsafe unless ``path`` is a real directory (not a symlink), the user's own and
    writable by nobody else."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise Unsafe(str(path), "is a symlink; refusing to follow it (the product only writes into real directories)")
    if not stat.S_ISDIR(st.st_mode):
        raise Unsafe(str(path), "is not a directory")
    why = problem(st)
    if why:
        raise Unsafe(str(path), f"{why}; refusing to write into or resume from it")


def tighten_umask() -> None:
    """Whatever the user's umask, nothing this process (or its children: sbatch jobs inherit it,
    Ray workers too) creates is group- or world-writable: submitit's job pickles, W&B's files."""
    os.umask(os.umask(0o022) | 0o022)


def make_dir(path: str | Path, private: bool = False) -> Path:
    """``mkdir -p`` whose new directories are owner-only-writable (0700 when ``private``), then
    ``check_dir`` on ``path`` itself: a directory someone else made first is refused, never adopted."""
    path = Path(path)
    try:
        os.mkdir(path, 0o700 if private else DIR_MODE)
        os.chmod(path, 0o700 if private else DIR_MODE, follow_symlinks=False)  # mkdir's mode is masked; chmod is not
    except FileNotFoundError:
        make_dir(path.parent)
        return make_dir(path, private)
    except FileExistsError:
        pass
    check_dir(path)
    return path


def open_nofollow(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` that refuses a symlink at ``path`` (Unsafe) instead of following it."""
    try:
        return os.open(path, flags | NOFOLLOW, mode)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise Unsafe(str(path), "is a symlink; refusing to follow it") from None
        raise


def open_regular(path: str | Path, link_within: str | Path | None = None) -> BinaryIO:
    """A regular file opened for reading without blocking and without following a symlink
    (NotRegular otherwise, naming it). ``link_within``: a symlink at ``path`` is followed when it
    is relative and its target stays inside that directory (the logs links a SLURM submission
    makes in a trial dir, pointing into the sweep's own ``slurm/``)."""
    path = Path(path)
    if link_within is not None and path.is_symlink():
        said = os.readlink(path)
        target = os.path.normpath(path.parent / said)
        if os.path.isabs(said) or not target.startswith(os.path.normpath(link_within) + os.sep):
            raise NotRegular(errno.ELOOP, f"a symlink to {said}, outside {link_within}; not followed", str(path))
        path = Path(target)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | NOFOLLOW)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise NotRegular(errno.ELOOP, "a symlink, not a regular file", str(path)) from None
        raise
    f = os.fdopen(fd, "rb")
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        f.close()
        raise NotRegular(errno.EINVAL, f"not a regular file ({_kind(mode)})", str(path))
    return f


def read_regular(path: str | Path, limit: int | None = None, mine: bool = False,
                 link_within: str | Path | None = None) -> bytes:
    """The bytes of a regular file (``open_regular``). ``mine``: also Unsafe unless the file is
    the user's own and writable by nobody else (a file about to be loaded, not just shown).
    ``limit``: at most that many bytes, from the end."""
    with open_regular(path, link_within) as f:
        st = os.fstat(f.fileno())
        if mine and (why := problem(st)):
            raise Unsafe(str(path), f"{why}; refusing to load it")
        if limit is not None and st.st_size > limit:
            f.seek(st.st_size - limit)
        return f.read()


def read_text(path: str | Path) -> str:
    return read_regular(path).decode()


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a plain file"
