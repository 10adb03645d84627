"""Which workers are ready and alive, in memory the supervisor shares with its forked workers.

A worker marks itself ready when its init() has finished and beats while its event loop runs;
the supervisor (`serve.py`) answers readiness for the service and replaces a worker whose beat
stops. `app.ScoringApp` marks and beats.
"""
from __future__ import annotations

import struct
import time


class SharedReadiness:
    """Memory shared across fork: one byte per worker (the service is ready when every worker is)
    and each worker's heartbeat (when its event loop last ran), which the supervisor watches."""

    _BEAT = struct.Struct("d")

    def __init__(self, workers: int) -> None:
        import mmap

        self._beats_at = -(-workers // 8) * 8  # the heartbeats start 8-byte aligned after the flags
        self._memory = mmap.mmap(-1, self._beats_at + self._BEAT.size * workers)
        self._workers = workers

    def beat(self, index: int) -> None:
        """Record that worker `index`'s event loop is running now (monotonic clock, shared by all processes)."""
        self._BEAT.pack_into(self._memory, self._beats_at + self._BEAT.size * index, time.monotonic())

    def last_beat(self, index: int) -> float:
        """When worker `index` last beat (0.0 before its first beat)."""
        return self._BEAT.unpack_from(self._memory, self._beats_at + self._BEAT.size * index)[0]

    def is_ready(self, index: int) -> bool:
        """True when worker `index` has finished init()."""
        return self._memory[index] == 1

    def mark(self, index: int) -> None:
        """Record that worker `index` has finished init()."""
        self._memory[index] = 1

    def clear(self, index: int) -> None:
        """Record that worker `index` is starting again (its replacement has not finished init())."""
        self._memory[index] = 0
        self._BEAT.pack_into(self._memory, self._beats_at + self._BEAT.size * index, 0.0)

    def all_ready(self) -> bool:
        """True when every worker has finished init()."""
        return self._memory[: self._workers].count(1) == self._workers
