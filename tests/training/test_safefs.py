"""The pieces behind "a sweep dir on a shared filesystem runs nobody else's code" (issue 17), each
on its own: modes whatever the umask, refusals by owner/mode/symlink, readers that never block,
the YAML node budget, the CIFAR batch allowlist, weights-only checkpoints (old ones still load),
and paths named by files checked before use."""

from __future__ import annotations

import io
import json
import os
import pickle
import random
import stat
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from train import yamlbound
from train.atomic import atomic_write_text
from train.checkpoint import CHECKPOINT, load_checkpoint, rng_states, save_checkpoint, set_rng_states
from train.safefs import NotRegular, Unsafe, check_dir, make_dir, open_nofollow, read_regular, safe_name, tighten_umask
from train.unpickle import ArraysOnly

root_only = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")


@pytest.fixture
def umask_000():
    old = os.umask(0)
    yield
    os.umask(old)


def test_new_dirs_and_files_are_never_writable_by_others_whatever_the_umask(tmp_path: Path, umask_000: None) -> None:
    d = make_dir(tmp_path / "a" / "b")
    assert stat.S_IMODE(d.stat().st_mode) & 0o022 == 0 and stat.S_IMODE((tmp_path / "a").stat().st_mode) & 0o022 == 0
    assert stat.S_IMODE(make_dir(tmp_path / "p", private=True).stat().st_mode) == 0o700
    atomic_write_text(tmp_path / "new" / "r.json", "{}")
    assert stat.S_IMODE((tmp_path / "new" / "r.json").stat().st_mode) & 0o022 == 0
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) & 0o022 == 0
    tighten_umask()
    assert os.umask(0) & 0o022 == 0o022


def test_a_dir_others_can_write_a_symlink_or_a_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "open").mkdir()
    (tmp_path / "open").chmod(0o775)
    with pytest.raises(Unsafe, match="writable by its group"):
        make_dir(tmp_path / "open")
    (tmp_path / "link").symlink_to(tmp_path / "open")
    with pytest.raises(Unsafe, match="is a symlink"):
        check_dir(tmp_path / "link")
    (tmp_path / "f").write_text("")
    with pytest.raises(Unsafe, match="not a directory"):
        check_dir(tmp_path / "f")
    (tmp_path / ".lock").symlink_to(tmp_path / "target")
    with pytest.raises(Unsafe, match="is a symlink"):
        open_nofollow(tmp_path / ".lock", os.O_RDWR | os.O_CREAT)
    assert not (tmp_path / "target").exists()


@root_only
def test_another_users_dir_or_file_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "theirs"
    d.mkdir()
    os.chown(d, 65534, 65534)
    with pytest.raises(Unsafe, match=r"owned by nobody \(uid 65534\)"):
        make_dir(d)
    f = tmp_path / "file"
    f.write_text("x")
    os.chown(f, 65534, 65534)
    assert read_regular(f) == b"x"  # shown: fine
    with pytest.raises(Unsafe, match="refusing to load it"):
        read_regular(f, mine=True)  # loaded: refused


def test_readers_never_block_on_a_fifo_and_never_follow_a_link(tmp_path: Path) -> None:
    fifo = tmp_path / "result.json"
    os.mkfifo(fifo)
    caught: list[BaseException] = []
    reader = threading.Thread(target=lambda: caught.append(pytest.raises(NotRegular, read_regular, fifo).value))
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "read_regular blocked on a FIFO"
    assert "a FIFO" in str(caught[0])
    (tmp_path / "secret").write_text("s")
    (tmp_path / "link").symlink_to(tmp_path / "secret")
    with pytest.raises(NotRegular, match="symlink"):
        read_regular(tmp_path / "link")


def test_a_log_link_is_followed_only_inside_its_sweep_dir(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    (sweep / "slurm" / "s1").mkdir(parents=True)
    (sweep / "trials" / "t").mkdir(parents=True)
    (sweep / "slurm" / "s1" / "1_0_log.err").write_text("log")
    (sweep / "trials" / "t" / "stderr.log").symlink_to("../../slurm/s1/1_0_log.err")
    assert read_regular(sweep / "trials" / "t" / "stderr.log", link_within=sweep) == b"log"
    (tmp_path / "elsewhere").write_text("no")
    (sweep / "trials" / "t" / "stdout.log").symlink_to("../../../elsewhere")
    with pytest.raises(NotRegular, match="outside"):
        read_regular(sweep / "trials" / "t" / "stdout.log", link_within=sweep)


def test_names_match_whole() -> None:
    assert safe_name("resnet_depth-1.2") and not safe_name("nl\n") and not safe_name("../x") and not safe_name(".x")
    assert not safe_name("a/b") and not safe_name("") and not safe_name(None) and not safe_name("x" * 101)


def test_the_yaml_node_budget_counts_every_use_of_an_alias() -> None:
    root = yamlbound.BoundedLoader("a: &x [1, 2, 3]\nb: [*x, *x]\n").get_single_node()
    # mapping 1 + key a 1 + list 4 + key b 1 + outer list (1 + 4 + 4)
    assert yamlbound.expanded_size(root, 10**6) == 16
    assert yamlbound.load("base: &b {lr: 1}\nother:\n  <<: *b\n  wd: 2\n") == {"base": {"lr": 1}, "other": {"lr": 1, "wd": 2}}
    bomb = "&a [" + ",".join(["x"] * 9) + "]"
    for i in range(1, 8):
        bomb = f"&{chr(97 + i)} [{bomb}, " + ", ".join([f"*{chr(96 + i)}"] * 8) + "]"
    with pytest.raises(yamlbound.TooLarge):  # (bench/security.py times the refusal)
        yamlbound.load(f"d: {bomb}")


def test_cifar_batches_load_numpy_arrays_and_nothing_else(tmp_path: Path) -> None:
    batch = {"data": np.arange(12, dtype=np.uint8).reshape(2, 6), "labels": [3, 4]}
    for proto in (2, 4, 5):
        got = ArraysOnly(io.BytesIO(pickle.dumps(batch, protocol=proto)), encoding="latin1").load()
        assert (got["data"] == batch["data"]).all() and got["labels"] == [3, 4]
    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self) -> tuple:
            return (open, (str(marker), "w"))

    with pytest.raises(pickle.UnpicklingError, match="not allowed"):
        ArraysOnly(io.BytesIO(pickle.dumps({"data": Payload()})), encoding="latin1").load()
    assert not marker.exists()


def test_rng_states_round_trip_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    random.seed(1)
    np.random.seed(2)
    torch.manual_seed(3)
    np.random.standard_normal()  # numpy's cached gaussian is part of its state
    save_checkpoint(tmp_path, {"epoch": 1})
    want = (random.random(), np.random.rand(), np.random.standard_normal(), torch.rand(1).item())
    state = load_checkpoint(tmp_path)
    set_rng_states(state["rng"])
    assert (random.random(), np.random.rand(), np.random.standard_normal(), torch.rand(1).item()) == want


def test_a_checkpoint_from_before_loads_with_a_note(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The format before issue 17: numpy's and Python's RNG states as their own tuples."""
    np.random.seed(5)
    random.seed(6)
    old = {"epoch": 2, "rng": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}}
    torch.save(old, tmp_path / CHECKPOINT)
    want = (np.random.rand(), random.random())
    state = load_checkpoint(tmp_path)
    assert state is not None and state["epoch"] == 2
    assert "in the format before 2026-12-02" in capsys.readouterr().err
    set_rng_states(state["rng"])
    assert (np.random.rand(), random.random()) == want
    assert isinstance(rng_states()["numpy"], dict)  # the next save is the new format


def test_paths_and_ids_a_file_names_are_checked_before_use(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from orchestrator.store.sweepdir import Submission, SweepDir

    sweep = SweepDir(tmp_path / "s")
    make_dir(sweep.path)
    good = Submission("abc123", "1_0", "slurm", 0.0, str(sweep.path / "slurm" / "x"), {})
    outside = Submission("abc124", "1_1", "ray", 0.0, "/etc", {})
    climbing = Submission("../../x", "1_2", "ray", 0.0, str(sweep.path / "ray" / "x"), {})
    (sweep.path / "submissions.jsonl").write_text("".join(json.dumps(s.to_json()) + "\n" for s in (good, outside, climbing)))
    assert [s.trial_id for s in sweep.submissions()] == ["abc123"]
    assert "submissions.jsonl line 2 is corrupt" in capsys.readouterr().err
    (sweep.path / "trials.jsonl").write_text(json.dumps({"trial_id": "ok1"}) + "\n" + json.dumps({"trial_id": "../../etc"}) + "\n")
    assert [t["trial_id"] for t in sweep.trials()] == ["ok1"]
