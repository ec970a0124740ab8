"""A trial process that died by a signal, told from its stderr: ``killed by SIGSEGV`` and the first
lines of the native stack, instead of a scheduler's guess ("maybe the OOM killer").

Three writers leave a mark before such a death: Python's faulthandler (every launcher enables it:
``Fatal Python error: Segmentation fault``), Ray's own handler in its workers (``*** SIGSEGV
received at time=...`` and ``PC: @ ...`` frames) and glibc's allocator checks (``double free or
corruption``, then SIGABRT)."""

from __future__ import annotations

import re
from pathlib import Path

from train.safefs import read_regular

STACK_LINES = 6
_FAULTHANDLER = {"Segmentation fault": "SIGSEGV", "Aborted": "SIGABRT", "Bus error": "SIGBUS",
                 "Floating-point exception": "SIGFPE", "Floating point exception": "SIGFPE",
                 "Illegal instruction": "SIGILL"}
_RAY = re.compile(r"\*\*\* (SIG[A-Z]+) received at time=")
_PYTHON = re.compile(r"Fatal Python error: (" + "|".join(map(re.escape, _FAULTHANDLER)) + ")")
_GLIBC = re.compile(r"^(double free or corruption|free\(\): |malloc\(\): |munmap_chunk\(\): |corrupted size vs)")
TAIL_BYTES = 64 * 1024


def killed_by(text: str) -> str | None:
    """``killed by SIGSEGV`` plus up to STACK_LINES lines of the native stack after the mark, or
    None when the text shows no death by a signal. The last mark wins (a resumed trial's log holds
    its earlier runs too)."""
    lines = text.splitlines()
    marks = [(i, sig) for i, line in enumerate(lines) if (sig := _signal(line.strip()))]
    if not marks:
        return None
    last, sig = marks[-1]
    # one death leaves several marks (Ray's, then faulthandler's): start at the first of them
    first = next(i for i, _ in marks if i >= last - 20)
    stack = [ln.rstrip() for ln in lines[first:] if ln.strip()][:STACK_LINES]
    return "\n".join([f"killed by {sig}", *stack])


def _signal(line: str) -> str | None:
    if m := _RAY.search(line):
        return m.group(1)
    if m := _PYTHON.search(line):
        return _FAULTHANDLER[m.group(1)]
    return "SIGABRT" if _GLIBC.search(line) else None


def read_tail(path: str | Path, nbytes: int = TAIL_BYTES) -> bytes | None:
    """The last ``nbytes`` of a log file (None when it is unreadable)."""
    try:  # (a log link in a trial dir is followed only into its own sweep dir; a FIFO never blocks)
        return read_regular(path, limit=nbytes, link_within=Path(path).parent.parent.parent)
    except OSError:
        return None


def killed_by_file(path: str | Path) -> str | None:
    """``killed_by`` over the last 64 KiB of a log file (None when it is unreadable)."""
    data = read_tail(path)
    return None if data is None else killed_by(data.decode(errors="replace"))
