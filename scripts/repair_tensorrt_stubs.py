#!/usr/bin/env python3
"""Make tensorrt-stubs 10.13.0.35.1 parse: its generated tensorrt.pyi has two kinds of syntax errors.

- plugin methods with a parameter named ``in`` (a Python keyword): renamed ``in_``;
- ``add_scale_nd`` with a parameter without a default after ones with defaults: that one gets ``= ...``.
Neither touches an API this package uses. Usage: repair_tensorrt_stubs.py STUBS_DIR (from make typecheck).
"""

import ast
import re
import sys
from pathlib import Path

path = Path(sys.argv[1]) / "tensorrt_bindings" / "tensorrt.pyi"
text = path.read_text()
text = re.sub(r"([(,] ?)in: ", r"\1in_: ", text)
text = text.replace("power: Weights = None, channel_axis: int)", "power: Weights = None, channel_axis: int = ...)")
ast.parse(text)  # fails loudly if another release brings other errors
path.write_text(text)
