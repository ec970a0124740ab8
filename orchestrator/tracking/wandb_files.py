"""Read W&B's offline run files (``run-<id>.wandb``) back, with wandb's own protobuf ``Record``.

wandb ships no reader any more. The file is a LevelDB-style log: a 7-byte header (``:W&B``,
0xBEE1, version), then 32 KiB blocks of chunks, each with a 7-byte header (crc32 of type+data,
length, type FULL/FIRST/MIDDLE/LAST). A writer killed mid-record leaves a torn tail: reading
stops at the first chunk that does not check out, which is what a resumed trial must trust."""

from __future__ import annotations

import json
import re
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train.safefs import read_regular

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path) -> list[Any]:
    """Every complete Record in the file, in order (a torn or corrupt tail is left out)."""
    from wandb.proto import wandb_internal_pb2 as pb  # heavy: loads wandb (about a second); only this path needs it

    data = read_regular(path)  # (a FIFO or a link in a run dir raises NotRegular: an OSError)
    if not data.startswith(HEADER[:6]):
        raise ValueError(f"{path} is not a W&B run file")
    out, pos, parts = [], len(HEADER), b""
    while pos + 7 <= len(data):
        room = BLOCK - pos % BLOCK
        if room < 7:  # the rest of a block too small for a header is padding
            pos += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        body = data[pos + 7:pos + 7 + length]
        if kind == 0 and length == 0:  # zero padding at the end of a block
            pos += room
            continue
        if len(body) < length or zlib.crc32(bytes([kind]) + body) != crc:
            break  # torn write
        pos += 7 + length
        if kind == FULL:
            parts = body
        elif kind == FIRST:
            parts = body
            continue
        elif kind == MIDDLE:
            parts += body
            continue
        elif kind == LAST:
            parts += body
        rec = pb.Record()
        rec.ParseFromString(parts)
        out.append(rec)
        parts = b""
    return out


def _items(items: Any) -> dict[str, Any]:
    out = {}
    for it in items:
        key = ".".join(it.nested_key) if it.nested_key else it.key
        out[key] = json.loads(it.value_json)
    return out


@dataclass
class RunFile:
    """What one process logged to a run: enough to check a run end to end."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    name: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)  # each with "_step"
    summary: dict[str, Any] = field(default_factory=dict)
    exited: bool = False
    exit_code: int | None = None

    @property
    def steps(self) -> list[int]:
        return [h["_step"] for h in self.history]


def read_run(path: str | Path) -> RunFile:
    run = RunFile(Path(path))
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.run_id, run.project, run.group, run.job_type = r.run_id, r.project, r.run_group, r.job_type
            run.name, run.tags = r.display_name, list(r.tags)
            run.config.update(_items(r.config.update))
        elif kind == "config":
            run.config.update(_items(rec.config.update))
        elif kind == "history":
            row = _items(rec.history.item)
            row["_step"] = rec.history.step.num if rec.history.HasField("step") else row.get("_step")
            run.history.append(row)
        elif kind == "summary":
            run.summary.update(_items(rec.summary.update))
        elif kind == "exit":
            run.exited, run.exit_code = True, rec.exit.exit_code
    # wandb keeps its own bookkeeping in config under "_wandb"
    run.config.pop("_wandb", None)
    return run


def run_files(wandb_dir: str | Path, run_id: str | None = None) -> list[Path]:
    """The run files under a W&B dir (offline and online runs), oldest process first."""
    root = Path(wandb_dir)
    pattern = f"*run-*-{run_id}/run-{run_id}.wandb" if run_id else "*run-*/run-*.wandb"
    return sorted(root.glob(pattern), key=lambda p: re.search(r"\d{8}_\d{6}", p.parent.name)[0])


def logged_steps(wandb_dir: str | Path, run_id: str) -> set[int]:
    """Every history step any process already wrote for this run id."""
    steps: set[int] = set()
    for f in run_files(wandb_dir, run_id):
        try:
            steps.update(s for s in read_run(f).steps if s is not None)
        except (OSError, ValueError):
            continue
    return steps
