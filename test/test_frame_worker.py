"""The latest-frame worker and the thread-safe counters (no ROS needed)."""

import threading

from lcsnet_seg.ros.frame_worker import LatestFrameWorker
from lcsnet_seg.stats import Counters


def test_newest_frame_wins_and_the_replaced_one_is_counted():
    started, release = threading.Event(), threading.Event()
    events, drops = [], []

    done = threading.Event()

    def process(batch):
        for _slot, msg, _received_at in batch:
            events.append(("frame", msg))
        if batch[0][1] == 1:
            started.set()
            assert release.wait(10)
        else:
            done.set()

    worker = LatestFrameWorker(process, on_drop=drops.append, before_frame=lambda: events.append(("before",)))
    worker.start()
    worker.offer("cam", 1)
    assert started.wait(10)
    worker.offer("cam", 2)
    worker.offer("cam", 3)  # replaces 2, which never started
    release.set()
    assert done.wait(10)
    assert worker.stop(timeout=10)
    assert [e for e in events if e[0] == "frame"] == [("frame", 1), ("frame", 3)]
    assert events == [("before",), ("frame", 1), ("before",), ("frame", 3)]  # settings only between frames
    assert drops == ["cam"]


def test_a_tick_takes_the_newest_frame_of_every_camera_and_a_silent_one_holds_back_none():
    started, release, done = threading.Event(), threading.Event(), threading.Event()
    ticks = []

    def process(batch):
        ticks.append([(slot, msg) for slot, msg, _ in batch])
        if len(ticks) == 1:
            started.set()
            assert release.wait(10)
        elif len(ticks) == 3:
            done.set()

    worker = LatestFrameWorker(process, on_drop=lambda slot: None)
    worker.start()
    worker.offer("front", "f1")
    assert started.wait(10)
    worker.offer("front", "f2")
    worker.offer("rear", "r1")
    worker.offer("front", "f3")  # replaces f2
    release.set()
    while len(ticks) < 2:
        threading.Event().wait(0.01)
    worker.offer("rear", "r2")  # front is silent now: rear alone makes the next tick
    assert done.wait(10)
    assert worker.stop(timeout=10)
    assert ticks == [[("front", "f1")], [("front", "f3"), ("rear", "r1")], [("rear", "r2")]]


def test_an_idle_worker_stops_without_waiting_for_a_frame_and_restarts():
    import time

    seen = []
    worker = LatestFrameWorker(lambda batch: seen.extend(batch), on_drop=lambda slot: None)
    for _ in range(3):
        worker.start()
        began = time.monotonic()
        assert worker.stop(timeout=30)
        # no frame ever came: stop woke the waiting thread itself (a worker that waited for a frame, or polled
        # with a long period, would take the whole timeout)
        assert time.monotonic() - began < 15
    worker.start()
    worker.offer("cam", "x")
    assert worker.stop(timeout=5)


def test_counters_are_exact_under_concurrent_updates():
    counters = Counters("a", "b")
    recent_seen = []

    def bump():
        for _ in range(20_000):
            counters.add("a")
            counters.add("b", 2)

    def drain():
        for _ in range(200):
            recent_seen.append(counters.take_recent())

    threads = [threading.Thread(target=bump) for _ in range(4)] + [threading.Thread(target=drain)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    recent_seen.append(counters.take_recent())
    assert counters.totals() == {"a": 80_000, "b": 160_000}
    assert sum(r["a"] for r in recent_seen) == 80_000 and sum(r["b"] for r in recent_seen) == 160_000
