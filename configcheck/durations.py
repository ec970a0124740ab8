"""Time limits as SLURM writes them (``MM``, ``HH:MM:SS``, ``D-HH:MM`` ...): parsed to minutes, and
said in words so ``1:30`` (1 min 30 s, not 1 h 30) cannot surprise anyone. Every backend's time
limit and the cost estimates use these."""

from __future__ import annotations

import math
import re

from configcheck import ConfigError

TIME_RE = re.compile(r"^(?:(?P<days>\d+)-)?(?P<clock>\d+(?::\d+){0,2})$")
TIME_HELP = "allowed: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS (SLURM's --time formats)"


def time_minutes(text: str, path: str = "resources.time") -> int:
    """SLURM time string -> whole minutes (rounded up; SLURM's granularity is one minute)."""
    if isinstance(text, int) and not isinstance(text, bool):
        text = str(text)
    if not isinstance(text, str):
        raise ConfigError(path, f"expected a time string, got {text!r}; {TIME_HELP}")
    m = TIME_RE.match(text.strip())
    if not m:
        raise ConfigError(path, f"{text!r} is not a time; {TIME_HELP}")
    fields = [int(f) for f in m["clock"].split(":")]
    days = m["days"] is not None
    d = int(m["days"]) if days else 0
    if days:  # D-HH[:MM[:SS]]
        h, mins, s = (fields + [0, 0])[:3]
    elif len(fields) == 3:  # HH:MM:SS
        h, mins, s = fields
    else:  # MM or MM:SS
        h, mins, s = 0, fields[0], fields[1] if len(fields) == 2 else 0
    if (mins >= 60 and (h or d)) or s >= 60 or (days and h >= 24):
        raise ConfigError(path, f"{text!r} has a field out of range; {TIME_HELP}")
    total = ((d * 24 + h) * 60 + mins) * 60 + s
    if total <= 0:
        raise ConfigError(path, f"must be positive, got {text!r}")
    return math.ceil(total / 60)


def duration_words(seconds: int) -> str:
    """3690 -> '1 h 1 min 30 s' (zero fields left out)."""
    d, rest = divmod(seconds, 86400)
    h, rest = divmod(rest, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{n} {unit}" for n, unit in ((d, "d"), (h, "h"), (m, "min"), (s, "s")) if n]
    return " ".join(parts) or "0 s"


def time_words(text: str) -> str:
    """What a job really gets for ``--time``, in words, so ``1:30`` (SLURM: 1 min 30 s, not 1 h 30)
    cannot surprise anyone: 'time limit 2 min per job (1:30 is MM:SS = 1 min 30 s, rounded up to
    whole minutes)'."""
    minutes = time_minutes(text)
    line = f"time limit {duration_words(minutes * 60)} per job"
    m = TIME_RE.match(str(text).strip())
    fields = m["clock"].split(":") if m else []
    note = ""
    if m and m["days"] is None and len(fields) <= 2:
        asked = int(fields[0]) * 60 + (int(fields[1]) if len(fields) == 2 else 0)
        note = f"{text} is {'MM:SS' if len(fields) == 2 else 'MM'} = {duration_words(asked)}"
        if asked % 60:
            note += ", rounded up to whole minutes"
        if len(fields) == 2:
            note += "; for hours write HH:MM:SS"
    return line + (f" ({note})" if note else "")
