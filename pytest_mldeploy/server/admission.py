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
    """Counts `/score` requests in flight; `enter()` is False past the limit (the request gets 429)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.admitted = AZURE_ADMISSION_FACTOR * limit
        self._count = multiprocessing.Value("l", 0, lock=True)
        self.message = MSG_TOO_MANY.format(admitted=self.admitted, limit=limit)

    def enter(self) -> bool:
        """Take a place if there is one."""
        with self._count.get_lock():
            if self._count.value >= self.admitted:
                return False
            self._count.value += 1
            return True

    def leave(self) -> None:
        """Give back a place taken by `enter()`."""
        with self._count.get_lock():
            self._count.value -= 1

    @property
    def in_flight(self) -> int:
        return self._count.value


_shared: Optional[AdmissionGate] = None


def gate_for(settings: Settings) -> Optional[AdmissionGate]:
    """The instance's gate (None when unlimited). Made once per process before workers fork, so they share it."""
    global _shared
    if not settings.max_concurrent_requests:
        return None
    if _shared is None or _shared.limit != settings.max_concurrent_requests:
        _shared = AdmissionGate(settings.max_concurrent_requests)
    return _shared
