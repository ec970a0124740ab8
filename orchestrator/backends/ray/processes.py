"""Processes of a Ray instance we started, found and stopped without trusting a file's word and
without touching anyone else's: a pid counts only with its start time, and a process is ours
only when its environment carries a line that our own start put there.

``ray stop`` is never used: it kills every Ray process of the user on the host, and a SLURM
node is shared (another job of the same user, its Ray, a login node's local Ray)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import tempfile
import time
from pathlib import Path
from typing import Any


def pid_start(pid: int) -> str | None:
    """The process's start time in clock ticks (/proc/PID/stat field 22): a pid plus its start
    time names one process, even after the pid is reused."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def descendants(pid: int) -> list[tuple[int, str]]:
    """(pid, start) of every process below ``pid``: the private Ray instance's daemons and workers."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            start = pid_start(child)
            if start is not None:
                out.append((child, start))
                todo.append(child)
    return out


def kill_leftovers(record: dict[str, Any], folder: Path) -> int:
    """Kill the processes a dead driver's private Ray instance left behind (its agents outlive a
    SIGKILLed driver). ``record`` was read from ``folder``'s driver.json, but a file is never
    trusted on its own word: a pid is killed only while its start time matches *and* its
    environment names this run dir's auth token (only the user's own processes can be read so,
    and only a Ray of this session has it); the short socket link is removed only when it is
    the user's own link in an owner-only ``orx-*`` temp dir, pointing at this run dir. Returns
    how many were killed."""
    if record.get("host") != socket.gethostname():
        return 0
    link = record.get("socket_link")
    if isinstance(link, str) and _our_link(Path(link), folder):
        with contextlib.suppress(OSError):
            Path(link).unlink()
            Path(link).parent.rmdir()
    killed = 0
    mark = f"RAY_AUTH_TOKEN_PATH={folder / 'auth_token'}".encode()
    for pid, start in record.get("ray_pids", []) if isinstance(record.get("ray_pids"), list) else []:
        if not (isinstance(pid, int) and pid > 1 and isinstance(start, str)) or pid_start(pid) != start:
            continue
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:  # another user's process: never ours to kill
            continue
        if mark in environ and pid_start(pid) == start:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
    return killed


def _our_link(link: Path, folder: Path) -> bool:
    """``link`` is the short socket symlink a RaySession for ``folder`` made: checked, not assumed."""
    try:
        parent = os.lstat(link.parent)
        st = os.lstat(link)
        return (link.name == "s" and link.parent.name.startswith("orx-")
                and str(link.parent.parent) == tempfile.gettempdir() and stat.S_ISLNK(st.st_mode)
                and st.st_uid == parent.st_uid == os.geteuid() and stat.S_IMODE(parent.st_mode) == 0o700
                and os.readlink(link) == str(folder / "session"))
    except OSError:
        return False


def alive(pid: int, start: str) -> bool:
    """The process pid+start is there and not a zombie (a killed child of ours stays in /proc,
    start time and all, until we reap it)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[19] == start and fields[0] not in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def marked(marker: str) -> list[tuple[int, str]]:
    """(pid, start) of every process whose environment holds the line ``marker`` (only the user's
    own processes can be read so; workers that Ray forks inherit their raylet's environment)."""
    out, line = [], marker.encode()
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        start = pid_start(int(name))
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if start is not None and line in environ:
            out.append((int(name), start))
    return out


def stop_marked(marker: str, grace: float = 10.0) -> int:
    """Stop the processes ``marked(marker)``: SIGTERM (Ray's daemons then end their workers),
    up to ``grace`` seconds for them to go, SIGKILL for what is left and what started meanwhile.
    Returns how many were still there for the SIGKILL."""
    procs = marked(marker)
    for pid, start in procs:
        _signal(pid, start, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while procs and time.monotonic() < deadline:
        time.sleep(0.2)
        procs = [(pid, start) for pid, start in procs if alive(pid, start)]
    left = 0
    for _ in range(2):  # once more for a worker a dying raylet started
        for pid, start in {*procs, *marked(marker)}:
            left += _signal(pid, start, signal.SIGKILL)
        procs = []
    return left


def _signal(pid: int, start: str, sig: int) -> int:
    if pid_start(pid) != start:  # gone, or the pid is someone else's now
        return 0
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
        return 1
    return 0
