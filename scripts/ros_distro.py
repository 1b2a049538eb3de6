"""Print which ROS 2 distribution this Python's rclpy belongs to; with --expect NAME, fail unless it is that one.

rclpy's major version names the distribution: 7 Jazzy, 9 Kilted (Humble's rclpy is 3.x, with no wheels on PyPI).
"""

import argparse
import importlib.metadata
import sys

DISTRIBUTIONS = {3: "humble", 7: "jazzy", 9: "kilted"}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--expect", choices=sorted(DISTRIBUTIONS.values()))
    args = ap.parse_args()
    version = importlib.metadata.version("ros-rclpy")
    distribution = DISTRIBUTIONS.get(int(version.split(".")[0]), "unknown")
    print(f"rclpy {version} (ROS 2 {distribution}) on Python {sys.version.split()[0]}")
    if args.expect and distribution != args.expect:
        print(f"ros_distro: expected ROS 2 {args.expect}, this environment has {distribution}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
