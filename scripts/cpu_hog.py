#!/usr/bin/env python3
"""Run a command while every core is kept busy, as on a shared robot or CI machine.

    scripts/cpu_hog.py [--workers N] -- COMMAND [ARGS...]

Starts N (default: one per core) processes that spin at normal priority, runs COMMAND, stops the
spinners and exits with COMMAND's exit code. The spinners also stop on their own if this process
dies (they watch their parent), so none is ever left behind.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import subprocess
import sys


def spin(parent: int) -> None:
    n = 0
    while True:
        n += 1
        if n % 2_000_000 == 0 and os.getppid() != parent:  # orphaned: the runner is gone
            return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    ap.add_argument("command", nargs=argparse.REMAINDER)
    args = ap.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        ap.error("give the command to run after --")
    spinners = [multiprocessing.Process(target=spin, args=(os.getpid(),), daemon=True) for _ in range(args.workers)]
    for p in spinners:
        p.start()
    print(
        f"cpu_hog: {args.workers} spinning processes keep every core busy while running: {' '.join(command)}",
        flush=True,
    )
    try:
        return subprocess.call(command)
    finally:
        for p in spinners:
            p.terminate()
        for p in spinners:
            p.join()


if __name__ == "__main__":
    sys.exit(main())
