"""Calls run() on one dedicated thread, so the event loop keeps answering (health, timeouts) meanwhile.

A call past the scoring timeout is answered at once; the run is then interrupted by raising
`ScoringInterrupted` in the worker thread (CPython's `PyThreadState_SetAsyncExc`), which takes
effect at its next Python instruction: code blocked inside C (a long numpy call, `time.sleep`)
finishes that call first. Calls queue behind each other, as with Azure's single sync worker.
"""
from __future__ import annotations

import asyncio
import ctypes
import queue
import threading
import time
from typing import Any, Callable, Optional


class ScoringInterrupted(BaseException):
    """Raised inside run() when its request has timed out (a BaseException: `except Exception` lets it through)."""


class ScoringTimeout(Exception):
    """run() did not finish within the scoring timeout."""

    def __init__(self, timeout_ms: int) -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms


class _Job:
    __slots__ = ("fn", "future", "loop", "state")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future, loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.state = "queued"  # queued -> running -> done | cancelled


def _settle(future: asyncio.Future, ok: bool, value: Any, elapsed_ms: float) -> None:
    if not future.done():
        if ok:
            future.set_result((value, elapsed_ms))
        else:
            future.set_exception(value)


def _drain() -> None:
    """A Python-level call: a pending asynchronous exception is raised here at the latest."""


class RunThread:
    """One daemon thread that runs the submitted calls in order."""

    def __init__(self, name: str = "mldeploy-run") -> None:
        self._queue: "queue.SimpleQueue[_Job]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: Optional[_Job] = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], Any], timeout_ms: int) -> tuple[Any, float]:
        """Run `fn` on the thread; (result, elapsed ms), its exception, or ScoringTimeout."""
        loop = asyncio.get_running_loop()
        job = _Job(fn, loop.create_future(), loop)
        self._queue.put(job)
        try:
            return await asyncio.wait_for(asyncio.shield(job.future), timeout_ms / 1000)
        except asyncio.TimeoutError:
            self._abandon(job)
            raise ScoringTimeout(timeout_ms) from None
        except asyncio.CancelledError:
            self._abandon(job)
            raise

    def _abandon(self, job: _Job) -> None:
        # Cancelled, the future takes no late result: nothing is left to log "exception never retrieved"
        # from a garbage-collector finaliser (which, formatting a traceback, can even break an ast.parse
        # running at that moment in CPython 3.11).
        job.future.cancel()
        with self._lock:
            if job.state == "queued":
                job.state = "cancelled"
            elif job.state == "running" and self._current is job and self._thread.ident is not None:
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(ScoringInterrupted)
                )

    def _loop(self) -> None:
        while True:
            try:
                self._run(self._queue.get())
            except ScoringInterrupted:
                pass  # a late interruption of a job that has already been answered

    def _run(self, job: _Job) -> None:
        ok, value, elapsed_ms = False, None, 0.0
        try:
            with self._lock:
                if job.state == "cancelled":
                    return
                job.state = "running"
                self._current = job
            try:
                start = time.perf_counter()
                value = job.fn()
                elapsed_ms = (time.perf_counter() - start) * 1000
                ok = True
            except BaseException as exc:  # run()'s own errors go back to the request; so does an interruption
                value = exc
            finally:
                with self._lock:
                    self._current = None
                    job.state = "done"
                _drain()
        except ScoringInterrupted as exc:
            with self._lock:
                self._current = None
                job.state = "done"
            ok, value = False, exc
        try:
            job.loop.call_soon_threadsafe(_settle, job.future, ok, value, elapsed_ms)
        except RuntimeError:
            pass  # the event loop has closed: the server is shutting down
