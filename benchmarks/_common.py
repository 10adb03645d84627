"""Shared helpers for the benchmark scripts: ports, CPU pinning, servers as subprocesses, wrk, results.

Every script in `benchmarks/` runs alone (`python benchmarks/bench_X.py`) and under `run_all.py`;
each prints a table and writes `benchmarks/results/<name>.json` through `write_results`, so the
README table can be regenerated from the latest files. Nothing here is timed against a target:
the scripts only report numbers and ratios (the test suite has no timed assertions).
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional, Sequence

import requests

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
EXAMPLE_DIR = REPO_ROOT / "example_projects" / "sklearn-diabetes"
CACHE_DIR = Path(os.environ.get("MLDEPLOY_BENCH_CACHE", Path.home() / ".cache" / "mldeploy-bench"))

RUN_ID_ENV = "MLDEPLOY_BENCH_RUN_ID"
"""Set by run_all.py so one script can reuse another's results from the same run."""

SERVER_CORE = 0
"""The core the server under test is pinned to."""
LOAD_CORE = 1
"""The core the load generator (wrk) is pinned to."""


# ---- small utilities ---------------------------------------------------------------------------

def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def cpu_count() -> int:
    """Cores this process may run on."""
    return len(os.sched_getaffinity(0))


def pinned(cmd: Sequence[str], cores: Optional[Iterable[int]]) -> list[str]:
    """`cmd` prefixed with `taskset -c CORES` when pinning is possible, else `cmd` unchanged."""
    if cores is None or shutil.which("taskset") is None:
        return list(cmd)
    wanted = sorted(set(cores))
    available = os.sched_getaffinity(0)
    if not set(wanted) <= available:
        return list(cmd)
    return ["taskset", "-c", ",".join(map(str, wanted)), *cmd]


@dataclass
class Spread:
    """Median and range of repeated measurements, so the noise is visible next to the number."""

    median: float
    low: float
    high: float
    values: list[float]

    @classmethod
    def of(cls, values: Sequence[float]) -> "Spread":
        vals = [float(v) for v in values]
        return cls(statistics.median(vals), min(vals), max(vals), vals)

    @property
    def spread_pct(self) -> float:
        """(max - min) / median, in percent."""
        return 100.0 * (self.high - self.low) / self.median if self.median else 0.0

    def fmt(self, digits: int = 0) -> str:
        return f"{self.median:.{digits}f} ({self.low:.{digits}f}-{self.high:.{digits}f})"


def ratio(numerator: Optional[float], denominator: Optional[float]) -> Optional[float]:
    """numerator / denominator, or None when either is missing or the denominator is zero."""
    if numerator is None or denominator in (None, 0):
        return None
    return numerator / denominator


class MissingPiece(Exception):
    """A piece this benchmark depends on is not there (yet): the script reports it instead of crashing."""

    def __init__(self, piece: str, fix: str) -> None:
        super().__init__(f"{piece}: {fix}")
        self.piece = piece
        self.fix = fix


# ---- servers as subprocesses -------------------------------------------------------------------

class ServerProcess:
    """A server started as a subprocess (in its own process group), waited for, and stopped.

    The log goes to a temporary file so a server that fails to start can be shown with its tail.
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        *,
        port: int,
        env: Optional[Mapping[str, str]] = None,
        cwd: Optional[Path] = None,
        cores: Optional[Iterable[int]] = None,
        health_path: str = "/",
        host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.cmd = pinned(cmd, cores)
        self.port = port
        self.host = host
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd
        self.health_path = health_path
        self.proc: Optional[subprocess.Popen] = None
        self._log = tempfile.NamedTemporaryFile(prefix=f"bench-{name}-", suffix=".log", delete=False)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 90.0) -> "ServerProcess":
        """Start the server and wait until its health route answers 200; raise with the log tail if not."""
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, cwd=self.cwd, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with code {self.proc.returncode} before answering:\n{self.log_tail()}")
            try:
                response = requests.get(self.base_url + self.health_path, timeout=2)
                if response.status_code == 200:
                    return self
                last = f"GET {self.health_path} answered {response.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer within {timeout:.0f} s ({last}):\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = Path(self._log.name).read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, then SIGKILL what is left after `grace` seconds."""
        if self.proc is None or self.proc.poll() is not None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=5)

    def close(self) -> None:
        self.stop()
        self._log.close()
        Path(self._log.name).unlink(missing_ok=True)

    def __enter__(self) -> "ServerProcess":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.close()


# ---- wrk ---------------------------------------------------------------------------------------

_WRK_MARK = "MLDEPLOY_WRK_JSON "

_WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = %(body)s

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '%(mark)s{"requests": %%d, "duration_us": %%d, "bytes": %%d, ' ..
    '"errors": {"connect": %%d, "read": %%d, "write": %%d, "status": %%d, "timeout": %%d}, ' ..
    '"latency_us": {"mean": %%f, "max": %%d, "p50": %%d, "p90": %%d, "p99": %%d}}\\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout,
    latency.mean, latency.max, latency:percentile(50), latency:percentile(90), latency:percentile(99)))
end
"""


@dataclass
class WrkResult:
    """One wrk run: requests per second and latency percentiles in milliseconds."""

    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int] = field(default_factory=dict)

    @property
    def non_2xx_or_errors(self) -> int:
        return sum(self.errors.values())


def wrk_script(body: bytes, directory: Path) -> Path:
    """A wrk Lua script that POSTs `body` as JSON and prints a machine-readable summary line."""
    path = directory / "post.lua"
    path.write_text(_WRK_SCRIPT % {"body": _lua_string(body.decode("utf-8")), "mark": _WRK_MARK})
    return path


def _lua_string(text: str) -> str:
    return "[==[" + text + "]==]"


def parse_wrk(output: str) -> WrkResult:
    """The summary line our Lua `done()` prints, as a WrkResult; ValueError when it is absent."""
    for line in output.splitlines():
        if line.startswith(_WRK_MARK):
            data = json.loads(line[len(_WRK_MARK):])
            seconds = data["duration_us"] / 1e6
            lat = data["latency_us"]
            return WrkResult(
                requests=data["requests"], seconds=seconds,
                rps=data["requests"] / seconds if seconds else 0.0,
                p50_ms=lat["p50"] / 1000, p90_ms=lat["p90"] / 1000, p99_ms=lat["p99"] / 1000,
                mean_ms=lat["mean"] / 1000, max_ms=lat["max"] / 1000, errors=data["errors"],
            )
    raise ValueError(f"wrk printed no summary line; its output was:\n{output[-2000:]}")


def run_wrk(
    url: str, script: Path, *, duration_s: float, threads: int = 1, connections: int = 8,
    cores: Optional[Iterable[int]] = (LOAD_CORE,), timeout_s: float = 5.0,
) -> WrkResult:
    """Run wrk against `url` with `script` (see `wrk_script`), pinned to `cores`, and parse its summary."""
    if shutil.which("wrk") is None:
        raise MissingPiece("wrk", "install it: apt-get install wrk")
    cmd = pinned(["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s",
                  f"--timeout={timeout_s:g}s", "-s", str(script), url], cores)
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=duration_s + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited with {done.returncode}: {done.stderr.strip() or done.stdout[-500:]}")
    return parse_wrk(done.stdout)


# ---- virtual environments for peers -------------------------------------------------------------

def ensure_venv(name: str, packages: Sequence[str], probe: str) -> Path:
    """`CACHE_DIR/name` with `packages` pip-installed (created on first use); returns the venv dir.

    `probe` is an executable under the venv's bin/ whose presence means the install is done.
    """
    venv = CACHE_DIR / name
    if (venv / "bin" / probe).exists():
        return venv
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    print(f"setting up {venv} ({' '.join(packages)}) ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *packages], check=True)
    return venv


def venv_version(venv: Path, dist: str) -> Optional[str]:
    """The installed version of distribution `dist` in `venv`, or None."""
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c",
         f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True, text=True,
    )
    return done.stdout.strip() if done.returncode == 0 else None


# ---- the example app, laid out like Azure ML ----------------------------------------------------

@dataclass
class AppRoot:
    """An Azure ML-style app root: `app/<src>/score.py`, `app/azureml-models/NAME/VERSION/model`."""

    root: Path
    source_dir: Path
    entry_script: str
    model_dir: Path

    def env(self) -> dict[str, str]:
        """The variables both servers read to find the script and the model."""
        return {
            "AML_APP_ROOT": str(self.root),
            "AZUREML_SOURCE_DIRECTORY": self.source_dir.name,  # relative to AML_APP_ROOT, as core/layout.py sets it
            "AZUREML_ENTRY_SCRIPT": self.entry_script,
            "AZUREML_MODEL_DIR": str(self.model_dir),
        }


def lay_out_example(directory: Path, source_name: str = "src") -> AppRoot:
    """Copy the sklearn-diabetes example into `directory/app` the way an Azure ML image lays it out."""
    app = directory / "app"
    src = app / source_name
    model_dir = app / "azureml-models" / "sklearn_regression_model" / "1"
    src.mkdir(parents=True, exist_ok=True)
    model_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy2(EXAMPLE_DIR / "score.py", src / "score.py")
    shutil.copy2(EXAMPLE_DIR / "models" / "sklearn_regression_model.pkl", model_dir / "sklearn_regression_model.pkl")
    return AppRoot(root=app, source_dir=src, entry_script="score.py", model_dir=model_dir)


def our_server_available() -> bool:
    """Whether `python -m pytest_mldeploy.server` can be run from this checkout."""
    return (REPO_ROOT / "pytest_mldeploy" / "server" / "__main__.py").exists()


def our_server(app: AppRoot, *, port: int, workers: int = 1, cores: Optional[Iterable[int]] = (SERVER_CORE,),
               name: str = "ours") -> ServerProcess:
    """Our scoring server (`python -m pytest_mldeploy.server`) on `app`, not yet started."""
    if not our_server_available():
        raise MissingPiece("pytest_mldeploy/server/__main__.py (python -m pytest_mldeploy.server)",
                           "the server engineer's scoring server has not landed yet")
    env = {
        **app.env(), "MLDEPLOY_HOST": "127.0.0.1", "MLDEPLOY_PORT": str(port), "WORKER_COUNT": str(workers),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])),
    }
    cmd = [sys.executable, "-m", "pytest_mldeploy.server", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(name, cmd, port=port, env=env, cwd=app.root, cores=cores)


# ---- tables and results -------------------------------------------------------------------------

def format_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A plain aligned text table (also valid as a Markdown table)."""
    cells = [[str(c) for c in header]] + [["-" if c is None else str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths)) + " |" for r in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def fmt(value: Optional[float], digits: int = 1, suffix: str = "") -> str:
    """A number for a table cell; '-' when missing."""
    return "-" if value is None else f"{value:.{digits}f}{suffix}"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(), "system": platform.platform(),
            "load_1m": round(os.getloadavg()[0], 2)}


def wait_until_quiet(max_busy_pct: float = 15.0, timeout_s: float = 30.0) -> Optional[str]:
    """Wait (up to `timeout_s`) for the machine to be nearly idle; a note saying how busy it was if it never got there.

    The machine is shared, so other people's test runs can land on the pinned cores mid-benchmark.
    """
    import psutil

    deadline = time.monotonic() + timeout_s
    busy = psutil.cpu_percent(interval=1.0)
    while busy > max_busy_pct and time.monotonic() < deadline:
        busy = psutil.cpu_percent(interval=2.0)
    if busy > max_busy_pct:
        return (f"the machine was {busy:.0f} % busy with other processes when this started "
                f"(waited {timeout_s:.0f} s for < {max_busy_pct:.0f} %): expect extra noise")
    return None


def git_commit() -> Optional[str]:
    done = subprocess.run(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return done.stdout.strip() or None


def write_results(
    name: str,
    *,
    title: str,
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    ratios: Sequence[Mapping[str, Any]] = (),
    missing: Sequence[str] = (),
    notes: Sequence[str] = (),
    data: Optional[Mapping[str, Any]] = None,
) -> Path:
    """Write `results/<name>.json` (table, ratios against targets, missing pieces, raw data) and return its path.

    `ratios` entries: {"name", "value", "target" (text like ">= 3.0"), "met" (bool or None)}.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "title": title,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "run_id": os.environ.get(RUN_ID_ENV),
        "command": " ".join([Path(sys.executable).name, *[_rel(a) for a in sys.argv]]),
        "commit": git_commit(),
        "machine": machine(),
        "header": list(header),
        "rows": [["-" if c is None else c for c in row] for row in rows],
        "ratios": [dict(r) for r in ratios],
        "missing": list(missing),
        "notes": list(notes),
        "data": _jsonable(data or {}),
    }
    path = RESULTS_DIR / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, default=str) + "\n")
    tmp.replace(path)
    return path


def _rel(arg: str) -> str:
    try:
        return str(Path(arg).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return arg


def _jsonable(value: Any) -> Any:
    if hasattr(value, "__dataclass_fields__"):
        return asdict(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def ratio_entry(name: str, value: Optional[float], target: str, met: Optional[bool], digits: int = 2) -> dict[str, Any]:
    """One line of the ratio summary: a value beside its target and whether it was met."""
    return {"name": name, "value": None if value is None else round(value, digits), "target": target, "met": met}


def print_report(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
                 ratios: Sequence[Mapping[str, Any]] = (), missing: Sequence[str] = (),
                 notes: Sequence[str] = ()) -> None:
    """Print the table, then the ratios against their targets, then anything missing."""
    print(f"\n## {title}\n")
    print(format_table(header, rows))
    if ratios:
        print()
        print(format_table(("ratio", "value", "target", "met"),
                           [(r["name"], r["value"], r["target"], _met(r.get("met"))) for r in ratios]))
    for line in missing:
        print(f"MISSING: {line}")
    for line in notes:
        print(f"note: {line}")
    sys.stdout.flush()


def _met(value: Optional[bool]) -> str:
    return "-" if value is None else ("yes" if value else "NO")


def load_results(name: str) -> Optional[dict[str, Any]]:
    """The latest `results/<name>.json`, or None."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def report_and_save(name: str, title: str, header: Sequence[str], rows: Sequence[Sequence[Any]],
                    ratios: Sequence[Mapping[str, Any]] = (), missing: Sequence[str] = (),
                    notes: Sequence[str] = (), data: Optional[Mapping[str, Any]] = None) -> Path:
    """Print the report, write `results/<name>.json`, and say where it went."""
    print_report(title, header, rows, ratios, missing, notes)
    path = write_results(name, title=title, header=header, rows=rows, ratios=ratios, missing=missing, notes=notes, data=data)
    print(f"\nwrote {path.relative_to(REPO_ROOT)}")
    return path
