"""The concurrency limit: Azure's `max_concurrent_requests_per_instance`, enforced by the server.

Azure's managed online endpoints admit at most `2 * max_concurrent_requests_per_instance *
instance_count` scoring requests in flight and answer the rest with 429 "Too many pending
requests" (how-to-troubleshoot-online-endpoints, "HTTP status codes"). A service here is one
instance, so the server admits `2 * MLDEPLOY_MAX_CONCURRENT_REQUESTS` `/score` requests at once,
counted across all workers of the instance (a counter in memory shared across fork).
"""
from __future__ import annotations

import multiprocessing
from typing import Optional

from .settings import Settings

#: Azure's factor: requests admitted in flight per unit of max_concurrent_requests_per_instance.
AZURE_ADMISSION_FACTOR = 2

MSG_TOO_MANY = (
    "Too many pending requests: the service admits {admitted} scoring requests at once "
    "(2 x max_concurrent_requests {limit}, Azure's rule); retry with backoff or raise max_concurrent_requests"
)


class AdmissionGate:
    """Counts `/score` requests in flight per worker; `enter()` is False past the instance's limit (429).

    One slot per worker in shared memory: a worker started again after its predecessor died
    calls `reset(index)`, so places the dead one held are not lost for good.
    """

    def __init__(self, limit: int, workers: int = 1) -> None:
        self.limit = limit
        self.admitted = AZURE_ADMISSION_FACTOR * limit
        self._slots = multiprocessing.Array("l", max(1, workers), lock=True)
        self.message = MSG_TOO_MANY.format(admitted=self.admitted, limit=limit)

    def enter(self, index: int = 0) -> bool:
        """Take a place for worker `index` if the instance has one."""
        with self._slots.get_lock():
            if sum(self._slots) >= self.admitted:
                return False
            self._slots[index] += 1
            return True

    def leave(self, index: int = 0) -> None:
        """Give back a place taken by `enter(index)`."""
        with self._slots.get_lock():
            self._slots[index] -= 1

    def reset(self, index: int) -> None:
        """Forget worker `index`'s places (it is starting, so it holds none)."""
        with self._slots.get_lock():
            self._slots[index] = 0

    @property
    def in_flight(self) -> int:
        with self._slots.get_lock():
            return sum(self._slots)


_shared: Optional[AdmissionGate] = None


def gate_for(settings: Settings) -> Optional[AdmissionGate]:
    """The instance's gate (None when unlimited). Made once per process before workers fork, so they share it."""
    global _shared
    if not settings.max_concurrent_requests:
        return None
    if _shared is None or _shared.limit != settings.max_concurrent_requests:
        _shared = AdmissionGate(settings.max_concurrent_requests, settings.workers)
    return _shared
