"""Rolling latency statistics and rate meters for diagnostics (no ROS imports)."""

from __future__ import annotations

import threading
import time
from collections import deque

import numpy as np

# The stages a node's frame is timed in, named once (/diagnostics, the demo's summary): always timed, the node's own
FRAME_STAGES = ("decode", "segment", "publish", "latency")
# and inside the Segmenter's call, where it times them (eager GPU and CPU; "gpu": a whole CUDA-graph frame)
SEGMENTER_STAGES = ("preprocess", "infer", "postprocess", "gpu")


class RollingStats:
    """Mean and percentiles of the last ``window`` samples of each named quantity (thread-safe)."""

    def __init__(self, window: int = 300) -> None:
        self._window = window
        self._samples: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def add(self, name: str, value: float) -> None:
        with self._lock:
            self._samples.setdefault(name, deque(maxlen=self._window)).append(value)

    def summary(self) -> dict[str, tuple[float, float]]:
        """{name: (mean, p95)} over the window."""
        with self._lock:
            snapshot = {k: np.fromiter(v, float) for k, v in self._samples.items() if v}
        return {k: (float(v.mean()), float(np.percentile(v, 95))) for k, v in snapshot.items()}

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()

    def add_frame(self, decode_ms: float, timings_ms: dict[str, float], publish_ms: float, latency_ms: float) -> None:
        """One processed frame: decode, the Segmenter's call ("segment", its "total") and whatever stages
        inside it the Segmenter timed (a CUDA-graph frame has one "gpu" figure), publish, and latency."""
        self.add("decode", decode_ms)
        for stage, ms in timings_ms.items():
            self.add("segment" if stage == "total" else stage, ms)
        self.add("publish", publish_ms)
        self.add("latency", latency_ms)


class RateMeter:
    """Events per second over a sliding time window (thread-safe)."""

    def __init__(self, window_s: float = 5.0) -> None:
        self._window = window_s
        self._times: deque[float] = deque()
        self._last: float | None = None
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._times.append(now)
            self._last = now
            self._trim(now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            self._trim(now)
            if len(self._times) < 2:
                return 0.0
            span = max(now - self._times[0], 1e-9)
            return len(self._times) / span

    def last(self) -> float | None:
        """When the newest event happened (time.monotonic()), also once it has left the window; None before any."""
        with self._lock:
            return self._last

    def _trim(self, now: float) -> None:
        while self._times and now - self._times[0] > self._window:
            self._times.popleft()


class Counters:
    """Named event counters shared between threads (the executor's callbacks and the frame worker).

    Each counter has a running total and a "recent" part that ``take_recent`` hands over and resets
    (what happened since the last diagnostics message); both change under one lock.
    """

    def __init__(self, *names: str) -> None:
        self._totals = dict.fromkeys(names, 0)
        self._recent = dict.fromkeys(names, 0)
        self._lock = threading.Lock()

    def add(self, name: str, count: int = 1) -> int:
        """Add ``count`` to ``name``; returns the new total."""
        with self._lock:
            self._totals[name] += count
            self._recent[name] += count
            return self._totals[name]

    def totals(self) -> dict[str, int]:
        with self._lock:
            return dict(self._totals)

    def take_recent(self) -> dict[str, int]:
        """The counts since the previous call, and start counting afresh."""
        with self._lock:
            recent, self._recent = self._recent, dict.fromkeys(self._recent, 0)
            return recent
