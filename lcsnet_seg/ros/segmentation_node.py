"""Entry point of ``ros2 run lcsnet_seg segmentation_node``.

SIGINT and SIGTERM are caught here, before the node's heavy imports, and only ask the node to stop:
the node then finishes the transition or frame in progress, releases its backend and exits 0.
A second signal during that release is ignored rather than cutting it short.
"""

import signal
import sys
import threading


def main(args=None) -> int:
    stop = threading.Event()

    def request_stop(signum, frame) -> None:
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, request_stop)
    from lcsnet_seg.ros.node import run

    return run(sys.argv if args is None else args, stop)


if __name__ == "__main__":
    sys.exit(main())
