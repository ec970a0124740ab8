"""A trial process killed by a signal, told from its stderr text (orchestrator/crashes.py)."""

from __future__ import annotations

import pytest

from orchestrator.backends.states import error_line
from orchestrator.store.crashes import killed_by

RAY = """[abc] epoch 1/3 loss 2.2
*** SIGSEGV received at time=1796163462 on cpu 0 ***
PC: @     0x7fcccc0a3f16  (unknown)  (unknown)
    @     0x7fcccc05a050  (unknown)  (unknown)
Fatal Python error: Segmentation fault

Stack (most recent call first):
  File "x.py", line 3 in f
"""


@pytest.mark.parametrize(("text", "signal", "stack"), [
    (RAY, "SIGSEGV", "PC: @     0x7fcccc0a3f16  (unknown)  (unknown)"),
    ("epoch 1\ndouble free or corruption (out)\nFatal Python error: Aborted\n", "SIGABRT", "double free or corruption (out)"),
    ("free(): invalid next size (fast)\n", "SIGABRT", "free(): invalid next size (fast)"),
    ("Fatal Python error: Bus error\n\nThread 0x1 (most recent call first):\n", "SIGBUS", "Thread 0x1"),
    ("Fatal Python error: Floating-point exception\n", "SIGFPE", ""),
])
def test_signal_and_native_stack_from_stderr(text: str, signal: str, stack: str) -> None:
    out = killed_by(text)
    assert out is not None
    assert out.splitlines()[0] == f"killed by {signal}"
    assert stack in out
    assert error_line(out) == f"killed by {signal}"


@pytest.mark.parametrize("text", ["", "Traceback (most recent call last):\nValueError: bad\n",
                                  "segmentation of the data\nfree memory 3 GB\n"])
def test_no_signal_no_claim(text: str) -> None:
    assert killed_by(text) is None


def test_the_last_death_wins_in_a_resumed_trials_log() -> None:
    text = "Fatal Python error: Aborted\n" + "epoch line\n" * 40 + RAY
    assert killed_by(text).splitlines()[0] == "killed by SIGSEGV"
