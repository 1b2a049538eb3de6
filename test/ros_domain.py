"""The ROS domain of one test run: one that no other process on this machine uses, held for the whole run.

A domain (50..99) is taken when this run holds its flock (another run of this suite skips it) and a holder
child process sees no ROS node in it for a moment (nobody else's: an older checkout, another job in a
container that shares the network and hands out the same pids). The holder then keeps a node there until
this run ends, so a later run's holder sees it and moves on. Domains are tried in random order. At most 101
on Linux: Fast DDS derives its UDP ports from the domain, and above 101 they fall in the kernel's ephemeral
range (32768-60999), where any process's outgoing socket can take one and discovery fails at random.
"""

from __future__ import annotations

import fcntl
import importlib.util
import random
import select
import subprocess
import sys
import tempfile
from pathlib import Path

FIRST, COUNT = 50, 50
LISTEN_S = 1.5  # how long the holder looks for other nodes before it takes a domain
START_S = 120.0  # a loaded machine can take long to start a Python process with rclpy

# A child process: Fast DDS reads FASTDDS_DEFAULT_PROFILES_FILE once per process, at its first participant,
# and the test process's first participant must come after the tests set it.
_HOLDER = """
import sys, time
import rclpy
domain, listen_s = int(sys.argv[1]), float(sys.argv[2])
rclpy.init(domain_id=domain)
node = rclpy.create_node("lcsnet_seg_test_domain_holder")
deadline = time.monotonic() + listen_s
while time.monotonic() < deadline and len(node.get_node_names()) <= 1:
    time.sleep(0.05)
if len(node.get_node_names()) > 1:
    sys.exit(3)
print("quiet", flush=True)
sys.stdin.read()  # holds the domain until the test run ends and closes its end of this pipe
"""

_held: list = []  # the flock's file and the holder process, kept for the life of this process


def claim() -> int:
    domains = list(range(FIRST, FIRST + COUNT))
    random.SystemRandom().shuffle(domains)
    for domain in domains:
        lock = open(Path(tempfile.gettempdir()) / f"lcsnet_seg_test_ros_domain_{domain}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            lock.close()
            continue
        holder = _hold(domain)
        if holder is None:
            lock.close()
            continue
        _held.extend([lock, holder])
        return domain
    raise RuntimeError(f"no free, quiet ROS domain in {FIRST}..{FIRST + COUNT - 1} for this test run")


def _hold(domain: int):
    """The holder process if ``domain`` is quiet (True where rclpy is missing: the ROS tests skip), else None."""
    if importlib.util.find_spec("rclpy") is None:
        return True
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(domain), str(LISTEN_S)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    ready, _, _ = select.select([holder.stdout], [], [], START_S)
    if ready and holder.stdout.readline().strip() == "quiet":
        return holder
    if holder.poll() is None:  # no answer in START_S: try another domain
        holder.kill()
    code = holder.wait()
    if code not in (3, -9):
        raise RuntimeError(f"the ROS domain holder failed in domain {domain} (exit code {code}); see its output above")
    return None
