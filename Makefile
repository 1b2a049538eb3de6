# Two entry points do all set-up on a fresh machine (see README.md):
#   make demo   -- build the venv, export the demo model, segment generated scenes into out/demo
#   (make demo-model re-exports the committed lcsnet_seg/model/weights/lcsnet_demo.onnx from the demo weights)
#   make test   -- build the venv, run the whole test suite
# CI (.ci/run) also runs `make test-under-load`, `make colcon-test`, `make mypy-package` and `make lint`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
# Keep ROS 2 traffic on this machine, in a domain of its own.
export ROS_AUTOMATIC_DISCOVERY_RANGE ?= LOCALHOST
export ROS_DOMAIN_ID ?= 42
export AMENT_PREFIX_PATH := $(abspath $(VENV))
export PIP_DISABLE_PIP_VERSION_CHECK := 1

SOURCES := $(shell find lcsnet_seg launch config resource -type f -not -name '*.pyc' 2>/dev/null) setup.py setup.cfg package.xml

# ROS 2 Jazzy (the LTS) beside Kilted: a second venv from requirements-jazzy.txt, on Python 3.10 where there is
# one (the package's minimum: Humble, JetPack 6), for the tests that talk to ROS (make test-jazzy).
JAZZY_VENV ?= .venv-jazzy
JAZZY_PY := $(JAZZY_VENV)/bin/python
PYTHON_JAZZY ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.10*/bin/python3.10) \
	$(shell python3.10 -c '' 2>/dev/null && command -v python3.10) $(PYTHON))

COLCON_WS := out/colcon_ws
# How the demo weights become the demo's ONNX (make demo, make demo-model).
DEMO_CONVERT := lcsnet_seg/model/weights/lcsnet_demo.pth --name lcsnet_demo --model-version demo-1 \
	--stages onnx,simplify --max-batch 8
# Tests that start ROS processes or talk DDS between threads: run again with every core busy.
ROS_PROCESS_TESTS := -m ros_process

.PHONY: demo demo-model test test-under-load test-jazzy colcon-test typecheck lint mypy-package reliability bench setup clean
setup: $(VENV)/.deps $(VENV)/.package

$(VENV)/.deps: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

# A real (non-editable) install: it lays out share/ament_index and share/lcsnet_seg as colcon does.
# Into venv $(1); links left from an earlier install go first (scripts/link_ros_executables.sh says why).
define install_package
	rm -rf $(1)/lib/lcsnet_seg; find $(1)/bin -maxdepth 1 -lname '../lib/lcsnet_seg/*' -delete
	$(1)/bin/python -m pip install -q --no-deps --no-build-isolation --force-reinstall .
	rm -rf build lcsnet_seg.egg-info
	scripts/link_ros_executables.sh $(1)
	touch $@
endef

$(VENV)/.package: $(VENV)/.deps $(SOURCES)
	$(call install_package,$(VENV))

demo: setup
	$(VENV)/bin/convert $(DEMO_CONVERT) --out-dir out/demo/model
	$(VENV)/bin/demo --model out/demo/model/lcsnet_demo.sim.onnx --out-dir out/demo --frames 48
	rm -rf out/demo/bag out/demo/eval
	$(VENV)/bin/make_demo_bag out/demo/bag --frames 60 --storage mcap
	$(VENV)/bin/evaluate out/demo/bag --image-topic /camera/image_raw --label-topic /camera/labels \
		--model out/demo/model/lcsnet_demo.sim.onnx --out-dir out/demo/eval --node --rate 0

# The committed demo model (lcsnet_seg/model/weights/lcsnet_demo.onnx): the demo weights exported and simplified,
# batches of 1..8 images (one per camera); the same command as `make demo`'s, so the two files are the same bytes.
demo-model: setup
	rm -rf out/demo-model
	$(VENV)/bin/convert $(DEMO_CONVERT) --out-dir out/demo-model
	cp out/demo-model/lcsnet_demo.sim.onnx lcsnet_seg/model/weights/lcsnet_demo.onnx

# Fuzz/soak/cycling sizes: a tenth in the everyday test run; `make reliability` runs them in full.
test: setup
	LCSNET_TEST_SCALE=$${LCSNET_TEST_SCALE:-0.1} $(PY) -m pytest -q

# The same tests on a machine whose every core is taken by other work (scripts/cpu_hog.py).
test-under-load: setup
	LCSNET_TEST_SCALE=$${LCSNET_TEST_SCALE:-0.1} $(PY) scripts/cpu_hog.py -- $(PY) -m pytest -q $(ROS_PROCESS_TESTS)

# The tests that talk to ROS (nodes, node processes, evaluate --node, the demo), against Jazzy's rclpy 7.1.6.
$(JAZZY_VENV)/.deps: requirements.txt requirements-jazzy.txt
	test -x $(JAZZY_PY) || $(PYTHON_JAZZY) -m venv $(JAZZY_VENV)
	$(JAZZY_PY) -m pip install -q -r requirements-jazzy.txt
	touch $@

$(JAZZY_VENV)/.package: $(JAZZY_VENV)/.deps $(SOURCES)
	$(call install_package,$(JAZZY_VENV))

test-jazzy: $(JAZZY_VENV)/.package
	$(JAZZY_PY) scripts/ros_distro.py --expect jazzy
	AMENT_PREFIX_PATH=$(abspath $(JAZZY_VENV)) LCSNET_TEST_SCALE=$${LCSNET_TEST_SCALE:-0.1} \
		$(JAZZY_PY) -m pytest -q $(ROS_PROCESS_TESTS)
	AMENT_PREFIX_PATH=$(abspath $(JAZZY_VENV)) $(JAZZY_PY) -m pytest -q test/test_diagnostics.py test/test_launch_config.py

# The ROS way: build in a colcon workspace, colcon test (pytest), and fail when colcon test-result finds a failure.
colcon-test: setup
	rm -rf $(COLCON_WS) && mkdir -p $(COLCON_WS)/src && ln -s $(CURDIR) $(COLCON_WS)/src/lcsnet_seg
	cd $(COLCON_WS) && . $(abspath $(VENV))/bin/activate && \
		colcon build --event-handlers console_direct- && \
		LCSNET_TEST_SCALE=$${LCSNET_TEST_SCALE:-0.1} colcon test --event-handlers console_direct- \
			--pytest-args -q && \
		colcon test-result --verbose

reliability: setup
	mkdir -p out
	LCSNET_TEST_SCALE=1 $(PY) -m pytest -q -s test/test_reliability.py 2>&1 | tee out/reliability.log

# tensorrt-stubs 10.13, repaired, for mypy (TensorRT itself cannot be installed here).
.typecheck/.stubs: requirements-typecheck.txt
	rm -rf .typecheck/stubs
	$(PY) -m pip install -q --no-deps --target .typecheck/stubs -r requirements-typecheck.txt
	$(PY) scripts/repair_tensorrt_stubs.py .typecheck/stubs
	touch $@

# ruff check (rules in ruff.toml) and ruff format --check over the package, tests, benchmarks and launch files,
# and vermin: nothing in them needs a Python newer than 3.10, the package's minimum (CI runs it).
lint: $(VENV)/.deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/vermin -q -t=3.10- --violations --no-tips --eval-annotations lcsnet_seg launch scripts test bench

# mypy over the whole package (CI runs it), the TensorRT adapter modules against tensorrt-stubs.
mypy-package: $(VENV)/.deps .typecheck/.stubs
	MYPYPATH=.typecheck/stubs $(PY) -m mypy --config-file setup.cfg lcsnet_seg

# The former TensorRT-adapters-only check; mypy-package covers those modules with the same stubs and config.
typecheck: mypy-package

bench: setup
	$(PY) bench/cpu_pipeline.py
	$(PY) bench/node_latency.py

clean:
	rm -rf $(VENV) $(JAZZY_VENV) out build *.egg-info .typecheck
