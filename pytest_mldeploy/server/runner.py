"""Calls run() on one dedicated thread, so the event loop keeps answering (health, timeouts) meanwhile.

A call past the scoring timeout is answered at once; the run is then interrupted by raising
`ScoringInterrupted` in the worker thread (CPython's `PyThreadState_SetAsyncExc`), which takes
effect at its next Python instruction: code blocked inside C (a long numpy call, `time.sleep`)
finishes that call first. Calls queue behind each other, as with Azure's single sync worker.

A run that is still going `stuck_grace_s` after its interruption never took it (a `time.sleep`, a
native loop): the thread is stuck for good. `on_stuck` is then called on the event loop with the
thread's stack, and the calls queued behind it fail with `WorkerStuck` instead of timing out one
by one; the app reports the worker unhealthy and the supervisor replaces it (see serve.py).
"""
from __future__ import annotations

import asyncio
import ctypes
import os
import queue
import sys
import threading
import time
import traceback
from typing import Any, Callable, Optional


class ScoringInterrupted(BaseException):
    """Raised inside run() when its request has timed out (a BaseException: `except Exception` lets it through)."""


class ScoringTimeout(Exception):
    """run() did not finish within the scoring timeout."""

    def __init__(self, timeout_ms: int, stack: str = "") -> None:
        super().__init__(f"Scoring timeout after {timeout_ms} ms")
        self.timeout_ms = timeout_ms
        #: Where run() was at the deadline, from run() down ("" when it had not started).
        self.stack = stack


class WorkerStuck(Exception):
    """The run thread is stuck in a run() that ignored its interruption; this worker takes no more calls."""


class _Job:
    __slots__ = ("fn", "future", "loop", "state")

    def __init__(self, fn: Callable[[], Any], future: asyncio.Future, loop: asyncio.AbstractEventLoop) -> None:
        self.fn = fn
        self.future = future
        self.loop = loop
        self.state = "queued"  # queued -> running -> done | cancelled


class _Deadline(Exception):
    """Set on a call's future when its scoring timeout passes first."""


def _expire(future: asyncio.Future) -> None:
    if not future.done():
        future.set_exception(_Deadline())


def _settle(future: asyncio.Future, ok: bool, value: Any, elapsed_ms: float) -> None:
    if not future.done():
        if ok:
            future.set_result((value, elapsed_ms))
        else:
            future.set_exception(value)


_SERVER_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_server_frame(filename: str) -> bool:
    return filename.startswith(_SERVER_DIR) or filename == threading.__file__


def _drain() -> None:
    """A Python-level call: a pending asynchronous exception is raised here at the latest."""


class RunThread:
    """One daemon thread that runs the submitted calls in order."""

    def __init__(self, name: str = "mldeploy-run", stuck_grace_s: float = 5.0,
                 on_stuck: Optional[Callable[[str], None]] = None) -> None:
        self._queue: "queue.SimpleQueue[_Job]" = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._current: Optional[_Job] = None
        self._stuck_grace_s = stuck_grace_s
        self._on_stuck = on_stuck
        self.stuck = False
        self._event_loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    async def call(self, fn: Callable[[], Any], timeout_ms: int) -> tuple[Any, float]:
        """Run `fn` on the thread; (result, elapsed ms), its exception, or ScoringTimeout.

        One future and one timer per call (not wait_for + shield, which cost two more futures and
        their callbacks on every request): the timer fails the future at the deadline, and a late
        result is then dropped by `_settle`.
        """
        if self.stuck:
            raise WorkerStuck("the run thread is stuck in an earlier run()")
        loop = self._event_loop
        if loop is None or loop.is_closed():
            # Once, not per call: asyncio.get_running_loop() makes a getpid() system call each time.
            loop = self._event_loop = asyncio.get_running_loop()
        future = loop.create_future()
        job = _Job(fn, future, loop)
        self._queue.put(job)
        deadline = loop.call_later(timeout_ms / 1000, _expire, future)
        try:
            return await future
        except _Deadline:
            raise ScoringTimeout(timeout_ms, self._abandon(job)) from None
        except asyncio.CancelledError:
            self._abandon(job)
            raise
        finally:
            deadline.cancel()

    def _abandon(self, job: _Job) -> str:
        """Cancel `job`, interrupting it when it runs; its stack at that moment ("" when it was not running)."""
        # Cancelled, the future takes no late result: nothing is left to log "exception never retrieved"
        # from a garbage-collector finaliser (which, formatting a traceback, can even break an ast.parse
        # running at that moment in CPython 3.11).
        job.future.cancel()
        with self._lock:
            if job.state == "queued":
                job.state = "cancelled"
            elif job.state == "running" and self._current is job and self._thread.ident is not None:
                stack = self.stack()
                ctypes.pythonapi.PyThreadState_SetAsyncExc(
                    ctypes.c_ulong(self._thread.ident), ctypes.py_object(ScoringInterrupted)
                )
                job.loop.call_later(self._stuck_grace_s, self._check_stuck, job)
                return stack
        return ""

    def stack(self) -> str:
        """The run thread's current Python stack from run() down, most recent call last ("" when idle).

        The server's own frames (threading, this module, the app) are left out: they are the same
        for every call and would push the entry script's frames out of a log tail.
        """
        frame = sys._current_frames().get(self._thread.ident or -1)
        if frame is None:
            return ""
        frames = traceback.extract_stack(frame)
        first = 0
        while first < len(frames) - 1 and _is_server_frame(frames[first].filename):
            first += 1
        return "".join(traceback.format_list(frames[first:]))

    def _check_stuck(self, job: _Job) -> None:
        """On the event loop, `stuck_grace_s` after interrupting `job`: is it still running?"""
        with self._lock:
            if self.stuck or job.state != "running" or self._current is not job:
                return
            self.stuck = True
        while True:  # the queued calls would only time out one after another
            try:
                queued = self._queue.get_nowait()
            except queue.Empty:
                break
            queued.state = "cancelled"
            if not queued.future.done():
                queued.future.set_exception(WorkerStuck("the run thread is stuck in an earlier run()"))
        if self._on_stuck is not None:
            self._on_stuck(self.stack())

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
