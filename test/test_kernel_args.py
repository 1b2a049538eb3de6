"""The GPU kernels' argument packs: the C struct each kernel reads is generated from the same field list as the
numpy records the host fills, and a C compiler lays it out exactly as numpy does (checked here with the host's C
compiler, whose x86-64 layout rules for these scalar types are nvcc's and NVRTC's)."""

import shutil
import subprocess

import pytest

from lcsnet_seg.gpu.kernel_args import POSTPROCESS_ARGS, PREPROCESS_ARGS
from lcsnet_seg.outputs import OUTPUTS


@pytest.mark.parametrize("struct", [PREPROCESS_ARGS, POSTPROCESS_ARGS], ids=lambda s: s.name)
def test_the_c_struct_has_numpys_layout(struct, tmp_path):
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler on this machine")
    lines = ["#include <stddef.h>", "#include <stdio.h>", struct.c_struct(), "int main(void) {"]
    lines += [f'    printf("{n} %zu\\n", offsetof(struct {struct.name}, {n}));' for n, _ in struct.fields]
    lines += [f'    printf("sizeof %zu\\n", sizeof(struct {struct.name}));', "    return 0;", "}"]
    source = "\n".join(lines) + "\n"
    (tmp_path / "layout.c").write_text(source)
    subprocess.run([compiler, "-o", str(tmp_path / "layout"), str(tmp_path / "layout.c")], check=True)
    printed = dict(
        line.split()
        for line in subprocess.run(
            [str(tmp_path / "layout")], capture_output=True, text=True, check=True
        ).stdout.splitlines()
    )
    assert {n: int(v) for n, v in printed.items() if n != "sizeof"} == {
        n: struct.dtype.fields[n][1] for n, _ in struct.fields
    }
    assert int(printed["sizeof"]) == struct.dtype.itemsize


def test_every_output_of_the_table_has_its_address_in_the_postprocess_pack():
    assert {f"{o.field}_out" for o in OUTPUTS} <= set(POSTPROCESS_ARGS.dtype.names)
