"""The latest-frame worker: one thread, fed through a mailbox of one slot per camera.

The subscription callbacks (executor thread) drop each message into its camera's slot; the worker thread
takes every slot that holds a message at once, the newest frame of each camera, and processes them as one
batch (a tick). A message that arrives while an older one of the same camera still waits replaces it: the
node always works on the newest frames, and the replaced one is counted as dropped. A camera that stops
sending simply has no frame in the next tick: it never holds back the others.

Gathering (``gather_s``, the node's batch_wait_ms): once a tick's first frame is in, the worker waits up to
``gather_s`` for the frames of the other cameras that are due (each camera that sent within twice its own frame
period), so that cameras triggered together share one batch; it starts at once when they are all in. A camera that
stops is no longer due after two of its periods, so it stops costing the wait. One camera never waits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Any


class LatestFrameWorker:
    """``process(batch)`` runs on the worker thread with ``[(slot, message, received_at), ...]``, one entry per
    slot that held a message, in the order the slots were first offered; ``before_frame()`` runs there first,
    before each tick (run-time settings are applied there, so a change never lands halfway through one);
    ``on_drop(slot)`` runs on the offering thread for a message replaced before the worker took it."""

    def __init__(
        self,
        process: Callable[[list[tuple[Hashable, Any, float]]], None],
        on_drop: Callable[[Hashable], object],
        before_frame: Callable[[], None] | None = None,
        name: str = "lcsnet_seg_worker",
        gather_s: float = 0.0,
    ) -> None:
        self._process = process
        self._on_drop = on_drop
        self._before_frame = before_frame
        self._name = name
        self._mailbox: dict[Hashable, tuple[Any, float]] = {}
        self.gather_s = float(gather_s)
        self._last: dict[Hashable, float] = {}  # each slot's last offer, and its frame period (smoothed)
        self._period: dict[Hashable, float] = {}
        self._cv = threading.Condition()
        self._running = False
        self._generation = 0  # a thread serves one start(); one left over from an earlier start ends at its next tick
        self._thread: threading.Thread | None = None
        self._late: threading.Thread | None = None  # a worker that did not stop in time (still in its tick)

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        """Start a worker. One that did not stop in time may still finish its tick; it never takes another."""
        with self._cv:
            self._running = True
            self._mailbox = {}
            self._last, self._period = {}, {}
            self._generation += 1
            generation = self._generation
        self._thread = threading.Thread(target=self._loop, args=(generation,), name=self._name, daemon=True)
        self._thread.start()

    @property
    def late(self) -> bool:
        """Whether a worker that did not stop in time is still inside its tick."""
        return self._late is not None and self._late.is_alive()

    def offer(self, slot: Hashable, message: Any) -> None:
        """Hand ``slot``'s (a camera's) newest message to the worker (called by the subscription callback)."""
        now = time.perf_counter()
        with self._cv:
            replaced = slot in self._mailbox
            self._mailbox[slot] = (message, now)
            last = self._last.get(slot)
            if last is not None:
                gap = now - last
                self._period[slot] = gap if slot not in self._period else 0.8 * self._period[slot] + 0.2 * gap
            self._last[slot] = now
            self._cv.notify()
        if replaced:
            self._on_drop(slot)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the tick in progress; False if the worker did not end within ``timeout`` s."""
        with self._cv:
            self._running = False
            self._mailbox = {}
            self._cv.notify_all()
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        if thread.is_alive():
            self._late = thread
            return False
        return True

    def _loop(self, generation: int) -> None:
        import logging

        while True:
            with self._cv:
                self._cv.wait_for(lambda: not self._running or bool(self._mailbox) or self._generation != generation)
                if not self._running or self._generation != generation:
                    return
                if self.gather_s > 0 and self._missing():
                    self._cv.wait_for(
                        lambda: not self._running or self._generation != generation or not self._missing(),
                        timeout=self.gather_s,
                    )
                batch, self._mailbox = self._mailbox, {}
            try:
                if self._before_frame is not None:
                    self._before_frame()
                self._process([(slot, message, received_at) for slot, (message, received_at) in batch.items()])
            except Exception:  # noqa: BLE001 - process() should never raise; if it does, the worker goes on
                logging.getLogger(__name__).exception("the frame worker's tick raised; continuing")

    def _missing(self) -> bool:
        """Whether a due camera's frame is not in yet (call with the lock held)."""
        now = time.perf_counter()
        return any(
            slot not in self._mailbox and now - last < 2.0 * self._period.get(slot, 0.0)
            for slot, last in self._last.items()
        )


class PendingSettings:
    """Run-time settings (e.g. overlay_alpha) queued by the parameter callback on the executor thread and
    applied by the worker before its next frame, so that a change never lands halfway through one."""

    def __init__(self, names: tuple[str, ...], convert: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self._names, self._convert = names, convert or {}
        self._pending: dict[str, Any] = {}
        self._lock = threading.Lock()

    def queue(self, values: dict[str, Any]) -> None:
        with self._lock:
            self._pending.update({k: v for k, v in values.items() if k in self._names})

    def clear(self) -> None:
        with self._lock:
            self._pending.clear()

    def apply_to(self, target: object | None) -> None:
        with self._lock:
            pending, self._pending = self._pending, {}
        if target is not None:
            for name, value in pending.items():
                setattr(target, name, self._convert.get(name, lambda v: v)(value))
