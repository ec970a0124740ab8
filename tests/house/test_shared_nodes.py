"""A SLURM node is shared: nothing the product runs may stop processes it did not start.
`ray stop` ends every Ray of the user on the host (another job's, a local one): it killed a
neighbouring test's Ray in CI (stop 23) before the Ray inside a SLURM job stopped only its own."""

from __future__ import annotations

import re

from kit import ROOT

# in code: the word as a command's argument ("stop", "pkill", "ray stop"), not prose about it
RAY_STOP = re.compile(r"""["'](?:stop|pkill|killall|ray\s+stop)\b""")


def hits(text: str) -> list[int]:
    return [i for i, line in enumerate(text.splitlines(), 1) if RAY_STOP.search(line.split("#", 1)[0])]


def test_no_product_code_runs_ray_stop_or_kills_by_name() -> None:
    found = [f"{p.relative_to(ROOT)}:{i}" for p in sorted((ROOT / "orchestrator").rglob("*.py")) for i in hits(p.read_text())]
    assert not found, found


def test_the_check_can_fail() -> None:
    assert hits('subprocess.run([ray, "stop", "--force"])') == [1]
    assert hits("subprocess.run(['pkill', '-f', 'raylet'])") == [1]
    assert hits("stop_marked(mark)  # never ray stop") == []
