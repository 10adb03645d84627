"""Once-a-second CPU and memory samples of a running service, from Docker's stats API or psutil.

Docker: the stats stream of the container, CPU in cores from the cgroup counters
(`cpu_total_delta / system_delta * online_cpus`) and memory as the working set `docker stats`
shows (usage minus inactive file cache: cgroup v1 `total_inactive_file`, v2 `inactive_file`).
Process: the server process and its children, CPU from `cpu_percent` / 100 and memory as the sum
of PSS (shared pages counted once across the tree; RSS where PSS is not available).
"""
from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Optional

INTERVAL_S = 1.0


@dataclass(frozen=True)
class Sample:
    """One reading: when (epoch s), CPU in cores, memory working set in bytes."""

    t: float
    cpu: float
    memory: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def docker_cpu_cores(stats: Mapping[str, Any]) -> Optional[float]:
    """Cores used between the two readings of one Docker stats frame; None when it has no previous reading."""
    cpu, pre = stats.get("cpu_stats") or {}, stats.get("precpu_stats") or {}
    total = (cpu.get("cpu_usage") or {}).get("total_usage")
    pre_total = (pre.get("cpu_usage") or {}).get("total_usage")
    system, pre_system = cpu.get("system_cpu_usage"), pre.get("system_cpu_usage")
    if total is None or pre_total is None or not system or not pre_system:
        return None
    system_delta = system - pre_system
    if system_delta <= 0:
        return None
    online = cpu.get("online_cpus") or len((cpu.get("cpu_usage") or {}).get("percpu_usage") or []) or 1
    return max(total - pre_total, 0) / system_delta * online


def docker_working_set(stats: Mapping[str, Any]) -> Optional[float]:
    """Memory usage minus inactive file cache (bytes), as `docker stats` shows it; None without a reading."""
    memory = stats.get("memory_stats") or {}
    usage = memory.get("usage")
    if usage is None:
        return None
    detail = memory.get("stats") or {}
    inactive = detail.get("total_inactive_file", detail.get("inactive_file", 0)) or 0
    return float(max(usage - inactive, 0))


def sample_from_docker_stats(stats: Mapping[str, Any], now: Optional[float] = None) -> Optional[Sample]:
    """A `Sample` from one frame of the Docker stats stream, or None for the first (no CPU delta yet)."""
    cpu, memory = docker_cpu_cores(stats), docker_working_set(stats)
    if cpu is None or memory is None:
        return None
    return Sample(now if now is not None else time.time(), cpu, memory)


class Sampler(ABC):
    """Collects samples in a background thread between `start()` and `stop()`."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.error: Optional[str] = None
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._lock = threading.Lock()

    def start(self) -> "Sampler":
        self._thread = threading.Thread(target=self._guarded, name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Sample]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        return self.snapshot()

    def snapshot(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def _add(self, sample: Sample) -> None:
        with self._lock:
            self.samples.append(sample)

    def _guarded(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a vanished process/container ends sampling; the profile says so
            self.error = f"{type(exc).__name__}: {exc}"

    @abstractmethod
    def _run(self) -> None:
        """Take samples with `_add` until `_stop` is set."""

    def __enter__(self) -> "Sampler":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class DockerSampler(Sampler):
    """Streams `container.stats(stream=True, decode=True)`; Docker sends about one frame a second."""

    def __init__(self, container_id: str) -> None:
        super().__init__()
        self.container_id = container_id

    def _run(self) -> None:
        from pytest_mldeploy.core.docker_client import docker_client

        client = docker_client()
        stream = client.api.stats(self.container_id, stream=True, decode=True)
        try:
            for frame in stream:
                if self._stop.is_set():
                    break
                sample = sample_from_docker_stats(frame)
                if sample is not None:
                    self._add(sample)
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            client.close()


class ProcessSampler(Sampler):
    """Polls a process and its children with psutil once a second."""

    def __init__(self, pid: int, interval_s: float = INTERVAL_S) -> None:
        super().__init__()
        self.pid = pid
        self.interval_s = interval_s

    def _run(self) -> None:
        import psutil

        root = psutil.Process(self.pid)
        known: dict[int, Any] = {}
        primed = False
        while not self._stop.is_set():
            tree = [root, *root.children(recursive=True)]
            cpu = memory = 0.0
            for proc in tree:
                proc = known.setdefault(proc.pid, proc)  # cpu_percent measures since this object's last call
                try:
                    with proc.oneshot():
                        cpu += proc.cpu_percent(None) / 100.0
                        memory += _memory_of(proc)
                except (psutil.NoSuchProcess, psutil.ZombieProcess):
                    continue
            if primed:
                self._add(Sample(time.time(), cpu, memory))
            primed = True  # the first cpu_percent call of each process returns 0: not a reading
            if not root.is_running():
                raise RuntimeError(f"process {self.pid} ended while being sampled")
            self._stop.wait(self.interval_s)


def _memory_of(proc: Any) -> float:
    """PSS of one process (its fair share of shared pages), RSS where the platform has no PSS."""
    try:
        info = proc.memory_full_info()
        pss = getattr(info, "pss", None)
        if pss is not None:
            return float(pss)
    except Exception:
        pass
    return float(proc.memory_info().rss)


def sampler_for(service: Any) -> Sampler:
    """The right sampler for a service: Docker stats for a container, psutil for a process."""
    container_id = getattr(service, "container_id", None)
    if container_id:
        return DockerSampler(container_id)
    pid = getattr(service, "pid", None)
    if pid:
        return ProcessSampler(int(pid))
    raise ValueError(f"{service!r} has neither a container_id nor a pid to sample")
