"""Scheduler output parsed from literal text, with no cluster: sacct/squeue/scontrol lines, array
ids, SLURM time strings, the intent -> task mapping and the state merge. A parsing bug fails here
even where SLURM cannot start."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from configcheck import ConfigError
from configcheck.durations import time_minutes
from orchestrator.backends.base import JobState
from orchestrator.backends.slurm.backend import SlurmBackend
from orchestrator.backends.slurm.sacct_text import _expand_array, _task_ids, merge_squeue, parse_max_array_size, parse_sacct
from orchestrator.backends.states import _merge
from orchestrator.store.sweepdir import Submission, SweepDir
from train.files import write_result


@pytest.mark.parametrize(("text", "ids"), [
    ("12", ["12"]), ("12_3", ["12_3"]), ("12_[3-5,7%2]", ["12_3", "12_4", "12_5", "12_7"]),
    ("12_[0]", ["12_0"]), ("12_[0-2]", ["12_0", "12_1", "12_2"]), ("7_[10-11%1]", ["7_10", "7_11"]),
])
def test_array_ids_expand_as_squeue_and_sacct_print_them(text: str, ids: list[str]) -> None:
    assert _expand_array(text) == ids


def test_sacct_lines_give_state_restarts_and_how_earlier_runs_ended() -> None:
    s = parse_sacct("5|CANCELLED by 0\n6_0|OUT_OF_MEMORY\n6_1|COMPLETED\n7|NODE_FAIL\n7|RUNNING\n"
                    "8|PREEMPTED\n8|REQUEUED\n8|PENDING\n9|FAILED+\n10|WEIRD_NEW_STATE\n11_[0-1]|PENDING\n\n")
    assert (s["5"].state, s["5"].active, s["5"].raw) == ("cancelled", False, "CANCELLED by 0")
    assert s["6_0"].state == "out_of_memory" and s["6_1"].state == "completed"
    assert (s["7"].state, s["7"].active, s["7"].restarts, s["7"].earlier) == ("running", True, 1, ("node_fail",))
    assert s["8"].restarts == 2 and s["8"].earlier == ("preempted", "pending") and s["8"].state == "pending"
    assert s["9"].state == "failed"  # a trailing + is stripped
    assert s["10"] == JobState("failed", False, "WEIRD_NEW_STATE", 0)  # unknown: ended, not a silent "running"
    assert s["11_0"].state == "pending" and s["11_1"].state == "pending" and s["11_0"].restarts == 0


def test_squeue_is_authoritative_for_what_is_active_and_keeps_sacct_restarts() -> None:
    sacct = parse_sacct("7|NODE_FAIL\n7|PENDING\n8_0|COMPLETED\n")
    merged = merge_squeue(sacct, "7|RUNNING\n9_[1-2]|PENDING\ngarbage line\n")
    assert (merged["7"].state, merged["7"].restarts, merged["7"].earlier) == ("running", 1, ("node_fail",))
    assert merged["9_1"].state == "pending" and merged["9_2"].active
    assert merged["8_0"].state == "completed"


def test_max_array_size_from_scontrol_show_config_text() -> None:
    assert parse_max_array_size("AuthType = auth/munge\nMaxArraySize            = 4242\nMaxJobCount = 1") == 4242
    assert parse_max_array_size("AuthType = auth/munge\n") is None
    assert parse_max_array_size("MaxArraySize = n/a\n") is None


@pytest.mark.parametrize(("text", "minutes"), [
    ("30", 30), ("1:30", 2), ("01:00:00", 60), ("2-00", 2880), ("1-12:30", 2190), ("0-0:0:1", 1),
    ("00:00:59", 1), (90, 90), ("1-00:00:00", 1440),
])
def test_slurm_time_strings(text, minutes: int) -> None:
    assert time_minutes(text) == minutes


@pytest.mark.parametrize("text", ["", "1:60", "1-24", "abc", "0", "1:2:3:4", "-5", "00:00:00"])
def test_bad_slurm_time_strings_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="resources.time"):
        time_minutes(text)


def test_an_intents_jobs_map_to_its_array_tasks() -> None:
    assert _task_ids(["12"], 1) == {0: "12"}  # submitit submits one task as a plain job
    assert _task_ids(["12_0", "12_2", "12_1"], 3) == {0: "12_0", 1: "12_1", 2: "12_2"}
    assert _task_ids(["12_0", "12_5"], 3) == {0: "12_0"}  # not this intent's
    assert _task_ids([], 2) == {}


def _state(tmp: Path, result: dict | None, job: JobState | None, sub_age: float = 3600, lease: dict | None = None):
    sweep = SweepDir(tmp / "s")
    d = sweep.trial_dir("t1")
    d.mkdir(parents=True, exist_ok=True)
    if result is not None:
        write_result(d, result)
    if lease is not None:
        (d / "lease.json").write_text(json.dumps(lease))
    sub = Submission("t1", "5_0", "slurm", time.time() - sub_age, str(tmp), {})
    jobs = {"5_0": job} if job else {}
    return _merge(sweep, "t1", sub, jobs, SlurmBackend(), True, lambda _: 123)  # (only its log paths are used)


DONE_R1 = {"status": "completed", "trial_id": "t1", "host": {"slurm_restart_count": "1"}}
RUNNING = JobState("running", True, "RUNNING", 1, ("node_fail",))
LIVE = {"trial_id": "t1", "host": "elsewhere", "pid": 1, "job_id": "4_0", "heartbeat": time.time() + 3600, "token": "x"}
DEAD = {**LIVE, "host": socket.gethostname(), "pid": 2 ** 22 + 7, "job_id": None}


@pytest.mark.parametrize(("result", "job", "kw", "state", "detail"), [
    # a finished verdict wins over anything the scheduler says, and says how the restart came about
    (DONE_R1, RUNNING, {}, "completed", "restarts 1 after node_fail"),
    # an active job wins over an old failure verdict (a retry is running)
    ({"status": "failed", "failure_kind": "crash", "error": "x"}, RUNNING, {}, "running",
     "RUNNING, restarts 1 after node_fail"),
    # a failure verdict names its kind
    ({"status": "failed", "failure_kind": "disk_full", "error": "OSError: disk full"}, None, {}, "disk_full",
     "OSError: disk full"),
    # the job ended without a verdict: the scheduler's word becomes one
    (None, JobState("timeout", False, "TIMEOUT"), {}, "timeout", "job 5_0 ended TIMEOUT"),
    # just submitted and not yet in sacct: pending; long gone from the scheduler: missing
    (None, None, {"sub_age": 1}, "pending", "submitted"),
    (None, None, {}, "missing", "the scheduler has no record of its job"),
    # a live lease is running whatever the latest job says; a dead holder's lease is not
    (None, JobState("completed", False, "COMPLETED"), {"lease": LIVE}, "running", "lease: host elsewhere pid 1, job 4_0"),
    (None, JobState("cancelled", False, "CANCELLED"), {"lease": DEAD}, "cancelled", "job 5_0 ended CANCELLED"),
], ids=["verdict-wins", "active-retry", "failure-kind", "scheduler-verdict", "pending", "missing", "live-lease",
        "dead-lease"])
def test_the_state_merge_rules(tmp_path: Path, result, job, kw, state, detail) -> None:
    s = _state(tmp_path, result, job, **kw)
    assert s.state == state and s.detail.startswith(detail), s


def test_a_scheduler_verdict_is_written_and_pending_writes_nothing(tmp_path: Path) -> None:
    _state(tmp_path / "d", None, JobState("timeout", False, "TIMEOUT"))
    assert json.loads((tmp_path / "d/s/trials/t1/result.json").read_text())["params"] == 123
    _state(tmp_path / "e", None, None, sub_age=1)
    assert not os.path.exists(tmp_path / "e/s/trials/t1/result.json")


def test_a_duplicate_whose_holder_died_says_both(tmp_path: Path) -> None:
    dup = tmp_path / "i/s/trials/t1/duplicates"
    dup.mkdir(parents=True)
    (dup / "x.json").write_text(json.dumps({"job_id": "5_0", "holder": {"host": "n9", "pid": 77}}))
    s = _state(tmp_path / "i", None, JobState("completed", False, "COMPLETED"))
    assert s.state == "failed" and "exited as a duplicate (host n9 pid 77 held the trial)" in s.detail, s.detail


def test_a_scheduler_that_does_not_answer_makes_a_trial_unknown_not_missing(tmp_path: Path) -> None:
    sweep = SweepDir(tmp_path / "s")
    sweep.trial_dir("t1").mkdir(parents=True)
    sub = Submission("t1", "5_0", "slurm", time.time() - 3600, str(tmp_path), {})
    s = _merge(sweep, "t1", sub, {}, SlurmBackend(), True, lambda _: 1, "sacct exited 1: Unable to connect to database")
    assert s.state == "unknown" and "not answering (sacct exited 1: Unable to connect to database)" in s.detail
    assert not (sweep.trial_dir("t1") / "result.json").exists()
