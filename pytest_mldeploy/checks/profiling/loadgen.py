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
from typing import Any, Optional
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
        extra: dict[str, str] = {}
        if alternate_url is not None:
            check_local(alternate_url)
            if not round_s or round_s <= 0:
                raise ValueError("an alternating run needs round_s > 0")
            extra["MLDEPLOY_LOAD_ALTERNATE"] = alternate_url.rstrip("/")
            extra["MLDEPLOY_LOAD_ROUND_S"] = repr(float(round_s))
            if self.alternate_key:
                extra["MLDEPLOY_LOAD_ALTERNATE_KEY"] = self.alternate_key
        run_time = max(warmup_s + seconds, 0.5)
        launched = self.launch(users, run_time, extra)
        watch = _CpuWatch(launched.process)
        watch.wait(run_time + BACKSTOP_S + OVERHEAD_S)
        run = launched.result(users, warmup_s, watch.busiest())
        run.round_s = float(round_s) if alternate_url is not None else None  # type: ignore[arg-type]
        return run

    def launch(self, users: int, run_time: float, extra_env: Optional[dict[str, str]] = None) -> "_Launched":
        """Start Locust with `users` for `run_time` seconds (the locustfile's own clock) and return at once."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._runs += 1
        out = self.workdir / f"load-{self._runs:02d}-u{users}.json"
        log = self.workdir / f"load-{self._runs:02d}-u{users}.log"
        command = [
            sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
            "-u", str(users), "-r", str(max(users * 10, 1)), "-t", f"{int(run_time + BACKSTOP_S)}s",
            "--host", self.base_url, "--only-summary", "--loglevel", "WARNING",
            "--exit-code-on-error", "0", "--stop-timeout", "0",
        ]  # fmt: skip
        if self.processes > 1:
            command += ["--processes", str(self.processes)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLDEPLOY_LOAD_")}
        env.update(
            MLDEPLOY_LOAD_BODIES=str(self.bodies_path),
            MLDEPLOY_LOAD_OUT=str(out),
            MLDEPLOY_LOAD_PATH=self.scoring_path,
            MLDEPLOY_LOAD_TIMEOUT_S=str(self.request_timeout_s),
            MLDEPLOY_LOAD_RUN_S=repr(float(run_time)),
            **(extra_env or {}),
        )
        if self.key:
            env["MLDEPLOY_LOAD_KEY"] = self.key
        with open(log, "wb") as log_file:
            process = subprocess.Popen(
                command, env=env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True
            )
        return _Launched(process, out, log, self.processes)


@dataclass
class _Launched:
    """A Locust process started by `LocustLoad.launch`, and where it writes."""

    process: subprocess.Popen
    out: Path
    log: Path
    processes: int

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(encoding="utf-8", errors="replace").splitlines()[-20:])

    def failure(self, users: int) -> ServiceError:
        return ServiceError(
            f"profiling: the load generator (Locust) failed at {users} users (exit code {self.process.returncode}); "
            f"its log {self.log}:\n{self.log_tail()}"
        )

    def result(self, users: int, warmup_s: float, generator_cpu: float) -> LoadRun:
        """The ended run's records (raises with Locust's log when it failed)."""
        if self.process.returncode != 0 or not self.out.exists():
            raise self.failure(users)
        return _load_run(json.loads(self.out.read_text(encoding="utf-8")), users, warmup_s, generator_cpu, self.processes, self.log_tail())

    def kill(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


class _CpuWatch:
    """The most CPU (cores) any one process of a Locust run used on average, read while it runs."""

    def __init__(self, process: subprocess.Popen) -> None:
        import psutil

        self.process = process
        self._cpu_seconds: dict[int, float] = {}
        self._first_seen: dict[int, float] = {}
        try:
            self._root: Any = psutil.Process(process.pid)
        except psutil.NoSuchProcess:
            self._root = None

    def poll(self) -> None:
        import psutil

        if self._root is None:
            return
        try:
            for proc in [self._root, *self._root.children(recursive=True)]:
                times = proc.cpu_times()
                self._cpu_seconds[proc.pid] = times.user + times.system
                self._first_seen.setdefault(proc.pid, time.monotonic())
        except psutil.Error:
            pass

    def busiest(self) -> float:
        now = time.monotonic()
        shares = [self._cpu_seconds[pid] / max(now - self._first_seen[pid], 1.0) for pid in self._cpu_seconds]
        return max(shares, default=0.0)

    def wait(self, timeout_s: float) -> None:
        """Wait for Locust to end, killing its process group past `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.process.poll() is None:
            if time.monotonic() > deadline:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.process.wait()
                raise ServiceError(
                    f"profiling: the load generator (Locust) did not finish within {timeout_s:.0f} s and was killed"
                )
            self.poll()
            time.sleep(0.5)


class LiveLoad:
    """One Locust process whose users are set while it runs, its records read as they come.

    The profiler's sweep and steady phase (and an in-place verification) run in one live load:
    no Locust start-up and no warm-up between levels, and each phase ends as soon as what it
    measures is decided. `set_users(n)` asks for n users; `records()` returns every request
    recorded so far; `covered_until()` is how far in time they are complete; `stop()` ends the
    run and returns the full `LoadRun` (the locustfile's final file, every record).
    """

    def __init__(self, load: LocustLoad, users: int, max_s: float) -> None:
        self.load, self.users, self.max_s = load, users, max_s
        self._seq = 0
        self._records: list[RequestRecord] = []
        self._errors: list[tuple[float, dict[str, int]]] = []
        self._covered: dict[str, float] = {}
        self._offset = 0
        self._partial = ""
        self.control = load.workdir / f"live-{id(self)}.control.json"
        self.stream = load.workdir / f"live-{id(self)}.stream.jsonl"
        self._launched: Optional[_Launched] = None
        self._watch: Optional[_CpuWatch] = None

    def start(self) -> "LiveLoad":
        self.load.workdir.mkdir(parents=True, exist_ok=True)
        self._launched = self.load.launch(
            self.users, self.max_s, {"MLDEPLOY_LOAD_CONTROL": str(self.control), "MLDEPLOY_LOAD_STREAM": str(self.stream)}
        )
        self._watch = _CpuWatch(self._launched.process)
        return self

    def _command(self, **command: Any) -> None:
        self._seq += 1
        tmp = self.control.with_suffix(".tmp")
        tmp.write_text(json.dumps({"seq": self._seq, **command}), encoding="utf-8")
        os.replace(tmp, self.control)

    def set_users(self, users: int) -> None:
        if users != self.users:
            self.users = users
            self._command(users=users)

    def _alive(self) -> None:
        assert self._launched is not None and self._watch is not None, "start() first"
        self._watch.poll()
        if self._launched.process.poll() is not None:
            raise self._launched.failure(self.users)

    def _read(self) -> None:
        try:
            with open(self.stream, "r", encoding="utf-8") as handle:
                handle.seek(self._offset)
                text = handle.read()
                self._offset = handle.tell()
        except FileNotFoundError:
            return
        text, self._partial = self._partial + text, ""
        lines = text.split("\n")
        self._partial = lines.pop()  # an unfinished last line waits for the next read
        for line in lines:
            for batch in json.loads(line) if line.strip() else []:
                self._records.extend(_record(r) for r in batch["records"])
                self._covered[batch["node"]] = max(self._covered.get(batch["node"], 0.0), float(batch["covered_until"]))
                if batch["errors"]:
                    self._errors.append((float(batch["covered_until"]), batch["errors"]))

    def records(self) -> list[RequestRecord]:
        self._read()
        return self._records

    def covered_until(self) -> float:
        """The time up to which every load process has reported its requests (0 before the first report)."""
        self._read()
        return min(self._covered.values(), default=0.0)

    def wait_covered(self, until: float, timeout_s: float = 30.0) -> None:
        """Sleep until the records are complete up to `until` (epoch s); raises if Locust died or stalls."""
        deadline = time.monotonic() + max(until - time.time(), 0) + timeout_s
        while self.covered_until() < until:
            self._alive()
            if time.monotonic() > deadline:
                raise ServiceError(f"profiling: the load generator (Locust) stopped reporting requests; its log {self._launched.log if self._launched else '?'}")
            time.sleep(0.05)

    def errors_between(self, start: float, end: float) -> dict[str, int]:
        """Errors reported in batches that cover [start, end) (to a flush interval)."""
        errors: dict[str, int] = {}
        for covered, batch in self._errors:
            if start <= covered < end + 1.0:
                for kind, count in batch.items():
                    errors[kind] = errors.get(kind, 0) + count
        return errors

    @property
    def generator_cpu(self) -> float:
        return self._watch.busiest() if self._watch is not None else 0.0

    def stop(self) -> LoadRun:
        """End the load and return every record it made (the window: its whole length)."""
        assert self._launched is not None and self._watch is not None, "start() first"
        if self._launched.process.poll() is None:
            self._command(stop=True)
        self._watch.wait(BACKSTOP_S + OVERHEAD_S)
        return self._launched.result(self.users, 0.0, self._watch.busiest())

    def close(self) -> None:
        """Kill the load if it still runs (after an error)."""
        if self._launched is not None and self._launched.process.poll() is None:
            self._launched.kill()

    def __enter__(self) -> "LiveLoad":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def sleep_until(t: float) -> None:
    """Sleep until the wall clock reads `t` (epoch s); at once when it is past."""
    delay = t - time.time()
    if delay > 0:
        time.sleep(delay)


def _record(r: list) -> RequestRecord:
    return RequestRecord(float(r[0]), float(r[1]), bool(r[2]), int(r[3] or 0), int(r[4]) if len(r) > 4 else 0)


def _load_run(data: dict, users: int, warmup_s: float, generator_cpu: float, processes: int, log_tail: str) -> LoadRun:
    """Records of every node; the window runs from start + warm-up to the earliest point all nodes reported."""
    nodes = data.get("nodes") or {}
    records = [_record(r) for node in nodes.values() for r in node["records"]]
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
