#!/usr/bin/env bash
# `ros2 run lcsnet_seg NAME` looks in <prefix>/lib/lcsnet_seg/. colcon puts the console scripts there
# (setup.cfg); pip ignores setup.cfg's script dir and puts them in <prefix>/bin, so link them over.
set -euo pipefail
prefix=${1:?usage: link_ros_executables.sh VENV_PREFIX}
mkdir -p "$prefix/lib/lcsnet_seg"
for name in $("$prefix/bin/python" -c '
import importlib.metadata as m
print(" ".join(e.name for e in m.distribution("lcsnet_seg").entry_points if e.group == "console_scripts"))'); do
  ln -sf "../../bin/$name" "$prefix/lib/lcsnet_seg/$name"
done
