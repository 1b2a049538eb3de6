"""Entry point of ``ros2 run lcsnet_seg segmentation_node``.

SIGINT and SIGTERM are caught here, before the node's heavy imports, and only ask the node to stop:
the node then finishes the transition or frame in progress, releases its backend and exits 0.
A second signal during that release, or while the process exits after it, is ignored rather than cutting
it short.
SIGUSR1 writes the stacks of all the node's Python threads to its standard error (the log), without
stopping it: `kill -USR1 <pid>` shows where a node that does not answer is waiting.
"""

import faulthandler
import signal
import sys


class StopRequest:
    """Set by a signal handler, read by the spin loop: a plain flag. (A threading.Event takes a lock in set(); a
    second signal arriving inside that set() re-enters the handler on the same thread: seen as a RecursionError
    under a storm of signals on Python 3.10.)"""

    def __init__(self) -> None:
        self._requested = False

    def set(self) -> None:
        self._requested = True

    def is_set(self) -> bool:
        return self._requested


def main(args=None) -> int:
    stop = StopRequest()

    def request_stop(signum, frame) -> None:
        stop.set()
        for other in (signal.SIGINT, signal.SIGTERM):  # asked once is enough: later signals cannot cut the release
            signal.signal(other, signal.SIG_IGN)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    try:
        faulthandler.register(signal.SIGUSR1, all_threads=True)
    except (AttributeError, RuntimeError, ValueError, OSError):  # no SIGUSR1 (Windows), or no usable stderr
        pass  # a diagnostic aid only: the node runs without it
    try:
        return run(sys.argv if args is None else args, stop)
    finally:
        # From here the node is stopped and released. Python's finalisation resets a signal whose handler is a
        # Python function to the default action, so a second Ctrl-C arriving now (a terminal signals the whole
        # group, and ros2 launch forwards one more) would kill the process with -2; an ignored one stays ignored.
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, signal.SIG_IGN)


def run(args, stop: StopRequest) -> int:
    """Run the node until ``stop`` is set; release the backend and return 0. rclpy's own signal handlers
    are not installed: a signal only sets ``stop``, so it cannot cut a transition or the release short."""
    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.signals import SignalHandlerOptions

    from lcsnet_seg.ros.node import SegmentationNode

    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)
    node = None
    try:
        node = SegmentationNode()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        autostart = bool(node.param("autostart"))
        if autostart and not stop.is_set() and node.trigger_configure() == TransitionCallbackReturn.SUCCESS:
            if not stop.is_set():
                node.trigger_activate()
        while not stop.is_set() and rclpy.ok():
            executor.spin_once(timeout_sec=0.1)
    finally:
        if node is not None:
            node.stop_processing()
            node.release()
            node.get_logger().info("stopped: frames ended, backend released")
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
