"""The latest-frame worker: one thread, fed through a one-slot mailbox.

The subscription callback (executor thread) drops each message into the mailbox; the worker thread
takes the newest one and processes it. A message that arrives while an older one still waits
replaces it: the node always works on the newest frame, and the replaced one is counted as dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class LatestFrameWorker:
    """``process(message, received_at)`` runs on the worker thread for the newest message offered;
    ``before_frame()`` runs there first, before each frame (run-time settings are applied there, so a
    change never lands halfway through a frame); ``on_drop()`` runs on the offering thread."""

    def __init__(
        self,
        process: Callable[[object, float], None],
        on_drop: Callable[[], object],
        before_frame: Callable[[], None] | None = None,
        name: str = "lcsnet_seg_worker",
    ) -> None:
        self._process = process
        self._on_drop = on_drop
        self._before_frame = before_frame
        self._name = name
        self._mailbox: tuple[object, float] | None = None
        self._cv = threading.Condition()
        self._running = False
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._running

    def start(self) -> None:
        with self._cv:
            self._running = True
            self._mailbox = None
        self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._thread.start()

    def offer(self, message: object) -> None:
        """Hand a message to the worker (called by the subscription callback)."""
        with self._cv:
            replaced = self._mailbox is not None
            self._mailbox = (message, time.perf_counter())
            self._cv.notify()
        if replaced:
            self._on_drop()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop after the frame in progress; False if the worker did not end within ``timeout`` s."""
        with self._cv:
            self._running = False
            self._mailbox = None
            self._cv.notify_all()
        thread, self._thread = self._thread, None
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: not self._running or self._mailbox is not None)
                if not self._running:
                    return
                item, self._mailbox = self._mailbox, None
            assert item is not None  # wait_for returned while running: the mailbox holds a message
            if self._before_frame is not None:
                self._before_frame()
            self._process(*item)


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
