"""The latest-frame worker: one thread, fed through a mailbox of one slot per camera.

The subscription callbacks (executor thread) drop each message into its camera's slot; the worker thread
takes every slot that holds a message at once, the newest frame of each camera, and processes them as one
batch (a tick). A message that arrives while an older one of the same camera still waits replaces it: the
node always works on the newest frames, and the replaced one is counted as dropped. A camera that stops
sending simply has no frame in the next tick: it never holds back the others.
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
    ) -> None:
        self._process = process
        self._on_drop = on_drop
        self._before_frame = before_frame
        self._name = name
        self._mailbox: dict[Hashable, tuple[Any, float]] = {}
        self._cv = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._cv:
            self._running = True
            self._mailbox = {}
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def offer(self, slot: Hashable, message: Any) -> None:
        """Hand ``slot``'s (a camera's) newest message to the worker (called by the subscription callback)."""
        with self._cv:
            replaced = slot in self._mailbox
            self._mailbox[slot] = (message, time.perf_counter())
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
        return not thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: not self._running or bool(self._mailbox))
                if not self._running:
                    return
                batch, self._mailbox = self._mailbox, {}
            if self._before_frame is not None:
                self._before_frame()
            self._process([(slot, message, received_at) for slot, (message, received_at) in batch.items()])


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
