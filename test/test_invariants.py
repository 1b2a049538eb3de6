"""Design invariants (../shared/DESIGN.md) that code review alone would let slip."""

import ast
import subprocess
import sys

from conftest import REPO

PACKAGE = REPO / "lcsnet_seg"
ROS_MODULES = {"rclpy", "rosidl_runtime_py", "launch", "launch_ros"}

# The layer order of ../shared/DESIGN.md, top row first. A module belongs to the first row whose
# prefix (a package with its trailing dot, or a module name) matches it; docs/ARCHITECTURE.md lists them.
LAYERS = (
    ("tools/", ("lcsnet_seg.tools.",)),
    ("ros/", ("lcsnet_seg.ros.",)),
    ("convert/", ("lcsnet_seg.convert.",)),
    ("eval/", ("lcsnet_seg.eval.",)),
    ("segmenter/", ("lcsnet_seg.segmenter.", "lcsnet_seg.segmenter")),
    ("backends/", ("lcsnet_seg.backends.",)),
    ("gpu/", ("lcsnet_seg.gpu.",)),
    ("preprocess/postprocess", ("lcsnet_seg.preprocess", "lcsnet_seg.postprocess")),
    ("model/", ("lcsnet_seg.model.",)),
    (
        "facts",
        (
            "lcsnet_seg",
            "lcsnet_seg.model_info",
            "lcsnet_seg.classes",
            "lcsnet_seg.image_formats",
            "lcsnet_seg.outputs",
            "lcsnet_seg.errors",
            "lcsnet_seg.image_messages",
            "lcsnet_seg.stats",
            "lcsnet_seg.resources",
        ),
    ),
)


def imported_roots(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module.split(".")[0]


def test_only_the_ros_layer_imports_rclpy_or_messages():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if "ros" in path.relative_to(PACKAGE).parts[:1]:
            continue
        for root in imported_roots(path):
            if root in ROS_MODULES or root.endswith("_msgs"):
                offenders.append(f"{path.relative_to(REPO)} imports {root}")
    assert not offenders, offenders


def test_cpu_path_needs_no_torch_tensorrt_or_cuda():
    code = (
        "import sys, numpy as np\n"
        "from lcsnet_seg.backends import create_backend\n"
        "from lcsnet_seg.segmenter.cpu import Segmenter\n"
        "import lcsnet_seg.eval.bag_io, lcsnet_seg.tools.evaluate, lcsnet_seg.tools.convert\n"
        "b, _ = create_backend('auto', sys.argv[1])\n"
        "Segmenter(b)(np.zeros((48, 64, 3), np.uint8), 'rgb8')\n"
        "loaded = [m for m in ('torch', 'tensorrt', 'cuda', 'cupy', 'rclpy') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    demo = PACKAGE / "model" / "weights" / "lcsnet_demo.onnx"
    result = subprocess.run([sys.executable, "-c", code, str(demo)], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]


def module_name(path):
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module):
    """(row index counted from the top, row name) of a package module; None when no row claims it."""
    for index, (name, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module + ".").startswith(prefix) if prefix.endswith(".") else module == prefix:
                return index, name
    return None


def package_modules():
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def package_imports(module, path, modules):
    """Every lcsnet_seg module that ``module`` imports, at module level or inside a function, with its line."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")[: len(module.split(".")) - node.level + is_package]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module
            # `from package import submodule` imports the submodule; `from module import name` the module
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in modules else source for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:  # `import a.b.c` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target.startswith("lcsnet_seg") and target != module:
                yield target, node.lineno


def import_graph():
    modules = package_modules()
    return modules, {m: sorted(set(package_imports(m, p, modules))) for m, p in modules.items()}


def test_every_module_has_a_row_in_the_layer_order():
    unplaced = [m for m in package_modules() if layer_of(m) is None]
    assert not unplaced, f"modules in no row (add them to LAYERS and docs/ARCHITECTURE.md): {unplaced}"


def test_imports_point_down_the_layer_order():
    modules, graph = import_graph()
    upward = []
    for module, targets in graph.items():
        row = layer_of(module)
        for target, line in targets:
            target_row = layer_of(target)
            if row and target_row and target_row[0] < row[0]:
                upward.append(
                    f"{modules[module].relative_to(REPO)}:{line}: {module} ({row[1]}) imports {target} "
                    f"({target_row[1]}): an arrow up the layer order"
                )
    assert not upward, "\n" + "\n".join(upward)


def import_cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(module):
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target, _ in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for module in graph:
        if module not in index:
            visit(module)
    return cycles


def test_no_import_cycles_not_even_through_lazy_imports():
    modules, graph = import_graph()
    described = []
    for cycle in import_cycles(graph):
        members = set(cycle)
        arrows = [
            f"{modules[m].relative_to(REPO)}:{line}: {m} imports {t}"
            for m in cycle
            for t, line in graph[m]
            if t in members
        ]
        described.append("cycle among " + ", ".join(cycle) + ":\n  " + "\n  ".join(arrows))
    assert not described, "\n" + "\n".join(described)


def test_the_cycle_finder_finds_a_cycle_and_the_row_lookup_places_modules():
    graph = {"a": [("b", 1)], "b": [("c", 2)], "c": [("a", 3)], "d": [("a", 4)]}
    assert import_cycles(graph) == [["a", "b", "c"]]
    assert (
        layer_of("lcsnet_seg.segmenter.gpu")[1] == "segmenter/" and layer_of("lcsnet_seg.segmenter")[1] == "segmenter/"
    )
    assert layer_of("lcsnet_seg.gpu.runtime")[1] == "gpu/"
    assert layer_of("lcsnet_seg.gpu")[1] == "gpu/"
    assert layer_of("lcsnet_seg.model_info")[1] == "facts"
    assert layer_of("lcsnet_seg.modelzoo") is None
