#!/usr/bin/env bash
# Wheels for a machine with Python 3.12 and no package index, such as the lent GPU machine, carried in a folder
# (the device tool carries 64 MiB a call, so each set goes in a call of its own to a warm machine):
#   ros       ROS 2 (rclpy and the message packages) and rosbags: cp312 wheels of exactly what this project's
#             venv runs (about 48 MB)
#   tensorrt  the TensorRT lean runtime, tensorrt-lean-cu13 11.4 (bindings + libs, about 45 MB): runs
#             version-compatible engines, has no builder
#   extra     nvImageCodec for CUDA 13 with nvJPEG (JPEG decoding on the GPU) and onnxsim, the venv's version
#             (convert's simplify stage), about 38 MB
#
#   scripts/gpu_wheels.sh download [DIR] [SET]           here, with the package index (default DIR .whl, SET ros)
#   scripts/gpu_wheels.sh install  [DIR] [PREFIX]        there (default PREFIX: /tmp/ros); then
#   . PREFIX/env.sh                                       sets PYTHONPATH, LD_LIBRARY_PATH, AMENT_PREFIX_PATH
#
# The download takes the dependency closure of the ROS packages in requirements-dev.txt from .venv
# (make setup first), pinned to the versions installed there, less what the GPU image already has
# (numpy, PyYAML, setuptools, typing-extensions, onnx, rich and theirs). empy publishes no wheel: it is built here.
set -euo pipefail
cd "$(dirname "$0")/.."
action=${1:?usage: gpu_wheels.sh download [DIR] | install [DIR] [PREFIX]}
dir=${2:-.whl}

set_name=${3:-ros}
pip_download() {
  .venv/bin/python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$dir" "$@"
}

case "$action" in
download)
  mkdir -p "$dir"
  if [ "$set_name" = tensorrt ]; then
    pip_download tensorrt-lean-cu13-bindings==11.4.0.106 tensorrt-lean-cu13-libs==11.4.0.106
    echo "gpu_wheels: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir"
    exit 0
  fi
  if [ "$set_name" = extra ]; then
    onnxsim=$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('onnxsim'))")
    pip_download nvidia-nvimgcodec-cu13==0.9.0.20 nvidia-nvjpeg==13.3.2.43 "onnxsim==$onnxsim"
    echo "gpu_wheels: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir"
    exit 0
  fi
  [ "$set_name" = ros ] || { echo "gpu_wheels: unknown set $set_name (ros | tensorrt | extra)" >&2; exit 2; }
  pins=$(.venv/bin/python - <<'PY'
import importlib.metadata as md
import re

roots = ["ros-rclpy", "ros-sensor-msgs", "ros-std-msgs", "ros-lifecycle-msgs", "ros-diagnostic-msgs", "rosbags",
         "onnxconverter-common"]
on_gpu_image = {"numpy", "pyyaml", "setuptools", "typing-extensions", "onnx", "rich", "protobuf", "packaging", "ml-dtypes",
                "markdown-it-py", "mdurl", "pygments"}
norm = lambda name: re.sub(r"[-_.]+", "-", name).lower()
seen, stack = {}, list(roots)
while stack:
    name = stack.pop()
    if norm(name) in seen:
        continue
    dist = md.distribution(name)
    seen[norm(name)] = dist.version
    for req in dist.requires or []:
        if "extra ==" in req and "fastrtps" not in req:
            continue
        stack.append(re.split(r"[ ;<>=!~\[(]", req, maxsplit=1)[0])
print(" ".join(f"{n}=={v}" for n, v in sorted(seen.items()) if n not in on_gpu_image))
PY
)
  empy=$(printf '%s\n' $pins | grep '^empy==')
  .venv/bin/python -m pip wheel -q --no-deps -w "$dir" "$empy"
  # shellcheck disable=SC2086
  pip_download $(printf '%s\n' $pins | grep -v '^empy==')
  echo "gpu_wheels: $(ls "$dir"/*.whl | wc -l) wheels, $(du -sh "$dir" | cut -f1) in $dir"
  ;;
install)
  prefix=${3:-/tmp/ros}
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --prefix "$prefix" "$dir"/*.whl
  site=$(python3 -c "import sys; print(f'$prefix/lib/python{sys.version_info.major}.{sys.version_info.minor}/site-packages')")
  libs=$(find "$site" -maxdepth 1 -type d -name 'ros_*.libs' | tr '\n' ':')
  # What ros_wheels_bootstrapper.pth does in a venv (a PYTHONPATH folder does not run .pth files).
  cat > "$prefix/env.sh" <<ENV
export PYTHONPATH="$site\${PYTHONPATH:+:\$PYTHONPATH}"
export LD_LIBRARY_PATH="$prefix/lib:${libs}\${LD_LIBRARY_PATH:-}"
export AMENT_PREFIX_PATH="$prefix\${AMENT_PREFIX_PATH:+:\$AMENT_PREFIX_PATH}"
export _ROS_WHEELS_BOOTSTRAP_COMPLETE=1
ENV
  echo "gpu_wheels: installed into $prefix; now: . $prefix/env.sh"
  ;;
*) echo "gpu_wheels: unknown action $action (download | install)" >&2; exit 2 ;;
esac
