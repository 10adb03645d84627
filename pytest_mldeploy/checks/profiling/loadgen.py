"""Drive load at a service with Locust, headless, in its own process (gevent never patches ours).

`LocustLoad.run(users, seconds)` starts `python -m locust -f locustfile.py --headless` for one
phase, bounded by a hard timeout, against a service on 127.0.0.1 only, and hands back every
request it recorded plus the window to measure. With `processes > 1` Locust's own distributed
mode forks that many workers under one master (`--processes N`).

`run(..., alternate_url=URL, round_s=R)` alternates the same users between two services in
rounds of R seconds aligned to the wall clock (even rounds: the first, odd: `alternate_url`), so
that whatever else loads the machine meanwhile falls on both alike; `LoadRun.rounds()` splits
the records back into those rounds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from pytest_mldeploy.checks.profiling.stats import LoadStats, RequestRecord, Round, split_rounds, summarize
from pytest_mldeploy.errors import ServiceError
from pytest_mldeploy.server.contract import SCORE_ROUTE

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
#: Locust's start-up and shutdown on top of the run time, before the hard timeout kills it.
OVERHEAD_S = 30.0
#: The locustfile ends the load `run_time` after the test really started; Locust's own `-t`,
#: which counts from before (seconds before on a loaded machine), only backs it up.
BACKSTOP_S = 15.0
#: Hosts the load may target: this machine only.
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@dataclass
class LoadRun:
    """What one Locust run recorded, and the window of it that counts."""

    users: int
    records: list[RequestRecord]
    errors: dict[str, int]
    start: float
    end: float
    generator_cpu: float = 0.0
    processes: int = 1
    log_tail: str = ""
    #: How many load processes reported records (one per Locust worker in distributed mode).
    nodes: int = 1
    #: Round length of an alternating run (None: one service throughout).
    round_s: Optional[float] = None

    def stats(self, target: Optional[int] = None) -> LoadStats:
        """Figures of the window; of one target's requests only when `target` is given."""
        records = self.records if target is None else [r for r in self.records if r.target == target]
        return summarize(records, self.start, self.end, self.users, self.errors if target is None else None)

    def rounds(self, round_s: Optional[float] = None) -> list[Round]:
        """The window split into rounds: the alternating run's own, or `round_s`-second slices of a plain one."""
        length = self.round_s or round_s
        if not length:
            raise ValueError("rounds() of a run that did not alternate needs round_s")
        return split_rounds(self.records, self.start, self.end, length, self.users, alternating=self.round_s is not None)


def check_local(base_url: str) -> None:
    """Refuse to load anything but this machine."""
    host = urlsplit(base_url).hostname or ""
    if host not in LOCAL_HOSTS:
        raise ServiceError(
            f"profiling: {base_url} is not on this machine; the profiler only loads 127.0.0.1 (serve the deployment locally)"
        )


class LocustLoad:
    """One service's load generator: request bodies, key and where its files go."""

    def __init__(
        self,
        base_url: str,
        bodies_path: Path,
        workdir: Path,
        *,
        key: Optional[str] = None,
        scoring_path: str = SCORE_ROUTE,
        processes: int = 1,
        request_timeout_s: float = 60.0,
        alternate_key: Optional[str] = None,
    ) -> None:
        check_local(base_url)
        self.base_url = base_url.rstrip("/")
        self.bodies_path = Path(bodies_path)
        self.workdir = Path(workdir)
        self.key = key
        self.scoring_path = scoring_path
        self.processes = max(int(processes), 1)
        self.request_timeout_s = request_timeout_s
        #: The bearer key of the service an alternating run switches to (None: no key).
        self.alternate_key = alternate_key
        self._runs = 0

    def run(
        self, users: int, seconds: float, warmup_s: float = 1.0, *, alternate_url: Optional[str] = None, round_s: Optional[float] = None
    ) -> LoadRun:
        """Load with `users` back-to-back clients for `warmup_s + seconds`; the window is the last `seconds`.

        With `alternate_url`, even rounds of `round_s` seconds load this service and odd ones that one.
        """
        if alternate_url is not None:
            check_local(alternate_url)
            if not round_s or round_s <= 0:
                raise ValueError("an alternating run needs round_s > 0")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._runs += 1
        out = self.workdir / f"load-{self._runs:02d}-u{users}.json"
        log = self.workdir / f"load-{self._runs:02d}-u{users}.log"
        run_time = max(warmup_s + seconds, 0.5)
        command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(max(users * 10, 1)), "-t", f"{int(run_time + BACKSTOP_S)}s",
            "--host", self.base_url, "--only-summary", "--loglevel", "WARNING",
            "--exit-code-on-error", "0", "--stop-timeout", "0",
        ]  # fmt: skip
        if self.processes > 1:
            command += ["--processes", str(self.processes)]
        env = dict(os.environ)
        env.update(
            MLDEPLOY_LOAD_BODIES=str(self.bodies_path),
            MLDEPLOY_LOAD_OUT=str(out),
            MLDEPLOY_LOAD_PATH=self.scoring_path,
            MLDEPLOY_LOAD_TIMEOUT_S=str(self.request_timeout_s),
            MLDEPLOY_LOAD_RUN_S=repr(float(run_time)),
        )
        for name in ("MLDEPLOY_LOAD_KEY", "MLDEPLOY_LOAD_ALTERNATE", "MLDEPLOY_LOAD_ALTERNATE_KEY", "MLDEPLOY_LOAD_ROUND_S"):
            env.pop(name, None)
        if self.key:
            env["MLDEPLOY_LOAD_KEY"] = self.key
        if alternate_url is not None:
            env["MLDEPLOY_LOAD_ALTERNATE"] = alternate_url.rstrip("/")
            env["MLDEPLOY_LOAD_ROUND_S"] = repr(float(round_s))  # type: ignore[arg-type]
            if self.alternate_key:
                env["MLDEPLOY_LOAD_ALTERNATE_KEY"] = self.alternate_key
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
            generator_cpu = _watch(process, run_time + BACKSTOP_S + OVERHEAD_S)
        log_text = log.read_text(encoding="utf-8", errors="replace")
        tail = "\n".join(log_text.splitlines()[-20:])
        if process.returncode != 0 or not out.exists():
            raise ServiceError(
                f"profiling: the load generator (Locust) failed at {users} users (exit code {process.returncode}); "
                f"its log {log}:\n{tail}"
            )
        run = _load_run(json.loads(out.read_text(encoding="utf-8")), users, warmup_s, generator_cpu, self.processes, tail)
        run.round_s = float(round_s) if alternate_url is not None else None  # type: ignore[arg-type]
        return run


def _watch(process: subprocess.Popen, timeout_s: float) -> float:
    """Wait for Locust to end (killing its process group past `timeout_s`); the most CPU (cores)
    any one of its processes used on average."""
    import psutil

    deadline = time.monotonic() + timeout_s
    cpu_seconds: dict[int, float] = {}
    first_seen: dict[int, float] = {}
    try:
        root = psutil.Process(process.pid)
    except psutil.NoSuchProcess:
        root = None
    while process.poll() is None:
        if time.monotonic() > deadline:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            process.wait()
            raise ServiceError(
                f"profiling: the load generator (Locust) did not finish within {timeout_s:.0f} s and was killed"
            )
        if root is not None:
            try:
                for proc in [root, *root.children(recursive=True)]:
                    times = proc.cpu_times()
                    cpu_seconds[proc.pid] = times.user + times.system
                    first_seen.setdefault(proc.pid, time.monotonic())
            except psutil.Error:
                pass
        time.sleep(0.5)
    now = time.monotonic()
    shares = [cpu_seconds[pid] / max(now - first_seen[pid], 1.0) for pid in cpu_seconds]
    return max(shares, default=0.0)


def _load_run(data: dict, users: int, warmup_s: float, generator_cpu: float, processes: int, log_tail: str) -> LoadRun:
    """Records of every node; the window runs from start + warm-up to the earliest point all nodes reported."""
    nodes = data.get("nodes") or {}
    records = [
        RequestRecord(float(r[0]), float(r[1]), bool(r[2]), int(r[3] or 0), int(r[4]) if len(r) > 4 else 0)
        for node in nodes.values()
        for r in node["records"]
    ]
    errors: dict[str, int] = {}
    for node in nodes.values():
        for kind, count in node["errors"].items():
            errors[kind] = errors.get(kind, 0) + count
    started = data.get("started_at") or (min((r.start for r in records), default=time.time()))
    stopped = data.get("stopped_at") or time.time()
    covered = min((node["covered_until"] for node in nodes.values()), default=stopped)
    end = min(stopped, covered)
    start = min(started + warmup_s, end)
    return LoadRun(users, records, errors, start, end, generator_cpu, processes, log_tail, nodes=len(nodes))
