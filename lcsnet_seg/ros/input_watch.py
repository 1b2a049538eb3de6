"""What reaches the node on one input topic, and, when nothing or too little does, why and what to do.

Three ways a camera's frames go missing, told apart so that the advice fits:
- nothing arrives: no publisher (topic name), publishers that do not match (QoS), or publishers that
  match while no frame arrives (the camera process's transport cannot carry whole frames);
- part of the frames never reach the node: the publisher's sequence numbers (rmw message info) jump,
  or the middleware reports lost messages; the share lost over the last seconds is reported;
- frames arrive: nothing to say, however slowly they come (a 1 Hz camera is not a fault).

A fresh activation, and a publisher that has only just matched, get a quiet period first: discovery
and the first frame take a moment, and a warning then would send the user to change a setting that
is already right.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from lcsnet_seg.ros.fastdds import camera_setting

# What a camera driver's process needs so that whole camera frames reach the node (README, "On a robot"):
# the sender's shared-memory segment carries the frame (docs/PERFORMANCE.md, transport measurements).
CAMERA_TRANSPORT_SETTING = camera_setting()
QUIET_AFTER_S = 3.0  # no diagnosis before this long after activation or after a publisher first matched
GAPS_PER_QUIET = 4.0  # once frames came, "no image" only after this many of their usual intervals (or QUIET)
LOSS_WINDOW_S = 5.0  # the partial-loss share is taken over this many seconds
LOSS_WARN_SHARE = 0.25  # a quarter of the published frames lost: a WARN
LOSS_MIN_FRAMES = 8  # published frames in the window before a share is judged


class InputWatch:
    """Arrivals on one input topic (thread-safe: arrivals come on the executor, reports on a timer)."""

    def __init__(self, topic: str, clock=time.monotonic) -> None:
        self.topic = topic
        self._clock = clock
        self._lock = threading.Lock()
        self.start()

    def start(self) -> None:
        """Forget everything seen so far: the node (re)activates now."""
        with self._lock:
            self._started = self._clock()
            self._matched_since: float | None = None
            self._last_arrival: float | None = None
            self._intervals: deque[float] = deque(maxlen=16)
            self._last_sequence: dict[bytes, int] = {}
            self._window: deque[tuple[float, int, int]] = deque()  # (time, received, lost)
            self._uses_sequence = False

    def arrived(self, message_info: dict | None = None) -> int:
        """One frame arrived; ``message_info``: rclpy's MessageInfo for it (None where not available).
        Returns how many frames of its publisher were lost just before it (sequence-number gap)."""
        now = self._clock()
        lost = 0
        sequence = (message_info or {}).get("publication_sequence_number")
        with self._lock:
            if self._last_arrival is not None:
                self._intervals.append(now - self._last_arrival)
            self._last_arrival = now
            if sequence:  # 0 or None: the middleware does not number its samples
                self._uses_sequence = True
                gid = _publisher_key(message_info)
                previous = self._last_sequence.get(gid)
                if previous is not None and sequence > previous:
                    lost = sequence - previous - 1
                self._last_sequence[gid] = sequence
            self._window.append((now, 1, lost))
            self._trim(now)
        return lost

    def lost_events(self, count: int) -> int:
        """The middleware reported ``count`` lost messages (message-lost event). Counted only where the samples
        carry no sequence numbers: else the sequence gaps count the same frames (Fast DDS reports both for one
        loss). Returns how many it counted (0 or ``count``)."""
        with self._lock:
            if self._uses_sequence:
                return 0
            now = self._clock()
            self._window.append((now, 0, int(count)))
            self._trim(now)
            return int(count)

    def _trim(self, now: float) -> None:
        while self._window and now - self._window[0][0] > LOSS_WINDOW_S:
            self._window.popleft()

    def loss(self) -> tuple[int, int]:
        """(frames received, frames lost) over the last LOSS_WINDOW_S seconds."""
        with self._lock:
            self._trim(self._clock())
            return sum(r for _, r, _ in self._window), sum(lost for _, _, lost in self._window)

    def problem(self, *, publishers: int, matched: int, reliability: str) -> str | None:
        """Why no image, or too few, arrive on the topic and what to do; None while all is well or while it is
        too early to tell. ``publishers``: on the topic; ``matched``: matched with this subscription."""
        now = self._clock()
        with self._lock:
            if matched > 0 and self._matched_since is None:
                self._matched_since = now
            elif matched == 0:
                self._matched_since = None
            last, started, matched_since = self._last_arrival, self._started, self._matched_since
            quiet = QUIET_AFTER_S
            if self._intervals:
                typical = sorted(self._intervals)[len(self._intervals) // 2]
                quiet = max(QUIET_AFTER_S, GAPS_PER_QUIET * typical)
        if now - started < QUIET_AFTER_S:
            return None
        if last is not None and now - last <= quiet:
            return self._partial_loss_problem()
        if publishers == 0:
            return f"no publisher on {self.topic}: check the topic name and remapping"
        if matched == 0:
            return (
                f"{publishers} publisher(s) on {self.topic} but none matches this subscription: their QoS is "
                f"incompatible with qos_reliability={reliability}; set qos_reliability to match the camera driver"
            )
        if matched_since is None or now - matched_since < QUIET_AFTER_S:
            return None  # a publisher has just matched: its first frame may be on its way
        fix = f"start the camera driver's process with {CAMERA_TRANSPORT_SETTING} (README, 'On a robot')"
        if last is None:
            return (
                f"{matched} publisher(s) matched on {self.topic} but no image has arrived: most likely the "
                f"transport cannot carry the frames (Fast DDS's default shared-memory segment holds 512 KiB, less "
                f"than one 640x480 rgb8 image): {fix}"
            )
        return (
            f"no image on {self.topic} for {now - last:.0f} s although {matched} publisher(s) are matched: the "
            f"camera stopped sending, or its frames outgrew the transport: {fix}"
        )

    def _partial_loss_problem(self) -> str | None:
        received, lost = self.loss()
        published = received + lost
        if published < LOSS_MIN_FRAMES or lost < LOSS_WARN_SHARE * published:
            return None
        return (
            f"only {received} of {published} frames published on {self.topic} in the last {LOSS_WINDOW_S:.0f} s "
            f"reached the node ({100 * lost / published:.0f} % lost before it): large frames from a camera process "
            f"without the large-image transport arrive only in part: start the camera driver's process with "
            f"{CAMERA_TRANSPORT_SETTING} (README, 'On a robot'); if the camera already has it, the node's process "
            "is too busy to take frames in time (a loaded CPU)"
        )


def _publisher_key(message_info: dict | None) -> bytes:
    gid = (message_info or {}).get("publisher_gid")
    data = gid.get("data") if isinstance(gid, dict) else None
    return bytes(data) if data is not None else b""
