#!/usr/bin/env python3
"""Make tensorrt-stubs 10.13.0.35.1 parse, and tell the truth about failures: its generated tensorrt.pyi has two
kinds of syntax errors, and types as never None what returns None on failure.

- plugin methods with a parameter named ``in`` (a Python keyword): renamed ``in_``;
- ``add_scale_nd`` with a parameter without a default after ones with defaults: that one gets ``= ...``;
- ``Builder.build_serialized_network``, ``Runtime.deserialize_cuda_engine`` and
  ``ICudaEngine.create_execution_context`` return None when they fail (a corrupt plan, a failed build, no device
  memory; NVIDIA's API reference): typed ``... | None`` so that mypy makes every caller check.
Usage: repair_tensorrt_stubs.py STUBS_DIR (from make typecheck).
"""

import ast
import re
import sys
from pathlib import Path

path = Path(sys.argv[1]) / "tensorrt_bindings" / "tensorrt.pyi"
text = path.read_text()
text = re.sub(r"([(,] ?)in: ", r"\1in_: ", text)
text = text.replace("power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = ...)")
for method, result in (
    ("build_serialized_network", "IHostMemory"),
    ("deserialize_cuda_engine", "ICudaEngine"),
    ("create_execution_context", "IExecutionContext"),
):
    text, count = re.subn(rf"(def {method}\(.*\)) -> {result}:", rf"\1 -> {result} | None:", text)
    assert count, f"{method} not found in the stubs"
ast.parse(text)  # fails loudly if another release brings other errors
path.write_text(text)
