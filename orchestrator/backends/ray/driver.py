"""The Ray side of a sweep: a private (or attached) Ray instance with token authentication, and
one Tune run over the launched trials, with ASHA when ``search.scheduler`` asks for it.

A private instance keeps every file under the sweep dir (``ray/<stamp>/``: token, session, logs,
Tune state); its sockets live under a short symlink in /tmp because a Unix socket path may not
exceed 107 bytes and sweep dirs can be deep."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from configcheck import ConfigError
from orchestrator.backends.ray.processes import alive, cmdline, pid_start
from train.atomic import atomic_write_json
from train.safefs import make_dir, open_nofollow

DRIVER = "driver.json"


_TOKEN: list[str] = []  # this process's token: Ray reads its token once per process


def write_token(path: Path) -> None:
    """A random token, readable by its owner only (created 0600, never widened). One per process,
    not per instance: Ray reads the token once, so a second private instance started by the same
    process (a search's next batch) must be started with the same one."""
    if not _TOKEN:
        _TOKEN.append(secrets.token_hex(32))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(_TOKEN[0])


def driver_alive(record: dict[str, Any], stale_s: float = 30.0) -> bool:
    if record.get("state") != "running":
        return False
    if record.get("host") == socket.gethostname():
        return pid_start(record["pid"]) == record.get("pid_start")
    return time.time() - record.get("heartbeat", 0) < stale_s  # another host: its heartbeat


THREAD_TIMEOUT_S = 150  # > tracking's longest close: 30 s waiting for init + 60 s for finish


class RaySession:
    """ray.init with authentication on: a private instance here, or the cluster at ``address``."""

    def __init__(self, run_dir: Path, address: str | None) -> None:
        self.run_dir, self.address = run_dir, address
        self.link: Path | None = None

    def start(self, cpus: int | None = None, gpus: float | None = None) -> None:
        # Set before Ray is imported: it reads its auth settings once. Never "disabled": whoever
        # reaches a Ray cluster can run code on it, and its ports listen on every interface.
        os.environ["RAY_AUTH_MODE"] = "token"
        # Ctrl-C must interrupt the driver (trials keep their checkpoints and resume later), not
        # make Tune stop every trial, which reads like a scheduler's early stop inside the trial.
        os.environ["TUNE_DISABLE_SIGINT_HANDLER"] = "1"
        make_dir(self.run_dir, private=True)
        self.run_dir.chmod(0o700)  # Ray makes its session dir world-writable: nobody else gets past this one
        if self.address is None:
            token = self.run_dir / "auth_token"
            write_token(token)
            os.environ.pop("RAY_AUTH_TOKEN", None)
            os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)
        import ray  # heavy: loads Ray, which reads its auth settings once: only after they are set

        # A reused worker waits this long for the last trial's thread, which closes its W&B run
        # after training (Ray's 2 s default fails the next trial on that worker instead).
        env = {"env_vars": {"TUNE_FUNCTION_THREAD_TIMEOUT_S": str(THREAD_TIMEOUT_S)}}
        if self.address is None:
            real = self.run_dir / "session"
            make_dir(real)
            self.link = Path(tempfile.mkdtemp(prefix="orx-")) / "s"  # short path for Ray's sockets
            self.link.symlink_to(real)
            ray.init(num_cpus=cpus, num_gpus=gpus, include_dashboard=False, _temp_dir=str(self.link),
                     log_to_driver=False, logging_level="ERROR", configure_logging=True, runtime_env=env)
        else:
            ray.init(address=self.address, log_to_driver=False, logging_level="ERROR", runtime_env=env)

    def resources(self) -> dict[str, float]:
        import ray  # heavy: loads Ray, which reads its auth settings once: only after they are set

        return dict(ray.cluster_resources())

    def stop(self) -> None:
        import ray  # heavy: loads Ray, which reads its auth settings once: only after they are set

        with contextlib.suppress(Exception):
            ray.shutdown()
        if self.link is not None:
            with contextlib.suppress(OSError):
                self.link.unlink()
                self.link.parent.rmdir()


def check_fits(need: dict[str, float], have: dict[str, float]) -> None:
    """A trial no node can ever hold would stay PENDING forever (ray#17359): refuse it now."""
    short = {k: v for k, v in need.items() if v > have.get(k, 0.0)}
    if short:
        asked = ", ".join(f"{k} {v:g}" for k, v in need.items())
        has = ", ".join(f"{k} {have.get(k, 0.0):g}" for k in need)
        raise ConfigError("resources", f"each trial asks for {asked}; the Ray cluster has {has}, so it could "
                          "never start (lower resources.cpus/gpus, or attach to a bigger cluster with --address)")


class RayWatch:
    """Watches a private instance's raylet and GCS: when one dies (SIGKILLed from outside, the
    OOM killer), Tune does not notice and waits forever; this interrupts the driver's main thread
    and says which died (``died``), so the driver can stop with that reason."""

    def __init__(self, pids: list[tuple[int, str]], every: float = 1.0) -> None:
        names = {pid: os.path.basename(cmdline(pid).split(" ")[0]) for pid, _ in pids}
        self.daemons = [(pid, start, names[pid]) for pid, start in pids if names[pid] in ("raylet", "gcs_server")]
        self.every, self.died = every, ""
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.wait(self.every):
            gone = [f"{name} (pid {pid})" for pid, start, name in self.daemons if not alive(pid, start)]
            if gone and not self.stop_event.is_set():  # not Ray's own shutdown at the end of the run
                self.died = f"Ray's {' and '.join(gone)} died (killed from outside, or by the OOM killer?)"
                # a real signal to the main thread: it interrupts the blocking call Tune waits in
                signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)
                return

    def __enter__(self) -> RayWatch:
        if self.daemons:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        if self.thread.is_alive():
            self.thread.join()  # before Ray is shut down: its daemons' deaths are then no news


class Heartbeat:
    """Rewrites the driver record every few seconds, so readers on other hosts see it alive."""

    def __init__(self, path: Path, record: dict[str, Any], every: float = 5.0) -> None:
        self.path, self.record, self.every = path, record, every
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop_event.wait(self.every):
            self.write()

    def write(self, **changes: Any) -> None:
        self.record.update(changes, heartbeat=time.time())
        atomic_write_json(self.path, self.record)

    def __enter__(self) -> Heartbeat:
        self.write()
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_event.set()
        self.thread.join()


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Ctrl-C and SIGTERM stop the driver: trials keep their checkpoints, Ray is shut down, and
    the trials stay without a verdict (interrupted, resumable). Both handlers are set here, as
    Tune's own SIGINT handling is turned off (it would stop each trial like a scheduler does)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def quiet_fds(log: Path) -> Iterator[int]:
    """Ray and Tune print to the process's stdout/stderr; send both to ``log`` and yield a
    duplicate of the real stdout for the live view."""
    sys.stdout.flush()
    sys.stderr.flush()
    real_out, real_err = os.dup(1), os.dup(2)
    target = open_nofollow(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(target, 1)
    os.dup2(target, 2)
    os.close(target)
    try:
        yield real_out
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(real_out, 1)
        os.dup2(real_err, 2)
        os.close(real_out)
        os.close(real_err)
