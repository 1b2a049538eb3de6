#!/usr/bin/env bash
# `ros2 run lcsnet_seg NAME` looks in <prefix>/lib/lcsnet_seg/; a venv's user looks in <prefix>/bin. Where pip puts
# the console scripts depends on how it installs: from a wheel it ignores setup.cfg's script dir and writes
# <prefix>/bin (pip with setuptools >= 70.1 or the `wheel` package); the legacy `setup.py install` (older setuptools
# without `wheel`, e.g. Python 3.10's venv) follows setup.cfg and writes <prefix>/lib/lcsnet_seg, as colcon does.
# Whichever it was, link the other place to it, so both hold every executable.
# PYTHON (default <prefix>/bin/python) is the interpreter that has the installed distribution on its path.
set -euo pipefail
prefix=${1:?usage: link_ros_executables.sh PREFIX}
python=${PYTHON:-$prefix/bin/python}
mkdir -p "$prefix/lib/lcsnet_seg" "$prefix/bin"
names=$("$python" -c '
import importlib.metadata as m
print(" ".join(e.name for e in m.distribution("lcsnet_seg").entry_points if e.group == "console_scripts"))')
for name in $names; do
  bin="$prefix/bin/$name" lib="$prefix/lib/lcsnet_seg/$name"
  if [ -f "$bin" ] && [ ! -L "$bin" ]; then
    ln -sfn "../../bin/$name" "$lib"
  elif [ -f "$lib" ] && [ ! -L "$lib" ]; then
    ln -sfn "../lib/lcsnet_seg/$name" "$bin"
  else
    echo "link_ros_executables.sh: $name is in neither $prefix/bin nor $prefix/lib/lcsnet_seg: reinstall the package" >&2
    exit 1
  fi
done
