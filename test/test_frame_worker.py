"""The latest-frame worker and the thread-safe counters (no ROS needed)."""

import threading

from lcsnet_seg.ros.frame_worker import LatestFrameWorker
from lcsnet_seg.stats import Counters


def test_newest_frame_wins_and_the_replaced_one_is_counted():
    started, release = threading.Event(), threading.Event()
    events, drops = [], []

    def process(msg, received_at):
        events.append(("frame", msg))
        if msg == 1:
            started.set()
            assert release.wait(10)

    worker = LatestFrameWorker(
        process, on_drop=lambda: drops.append(1), before_frame=lambda: events.append(("before",))
    )
    worker.start()
    worker.offer(1)
    assert started.wait(10)
    worker.offer(2)
    worker.offer(3)  # replaces 2, which never started
    release.set()
    done = threading.Event()
    worker._process = lambda msg, t: (events.append(("frame", msg)), done.set())
    assert done.wait(10)
    assert worker.stop(timeout=10)
    assert [e for e in events if e[0] == "frame"] == [("frame", 1), ("frame", 3)]
    assert events == [("before",), ("frame", 1), ("before",), ("frame", 3)]  # settings only between frames
    assert drops == [1]


def test_stop_is_prompt_when_idle_and_restart_works():
    seen = []
    worker = LatestFrameWorker(lambda m, t: seen.append(m), on_drop=lambda: None)
    for _ in range(3):
        worker.start()
        assert worker.stop(timeout=5)
    worker.start()
    worker.offer("x")
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
