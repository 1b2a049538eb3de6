"""A static check of the TensorRT names the package uses against TensorRT 10.3's and 11.x's Python API name lists
(test/data/tensorrt_api/, taken from NVIDIA's bindings; README there).

Every ``trt.X`` / ``trt.X.Y`` and every attribute used on an object known to be a TensorRT one must exist in
both versions, unless guarded: inside ``if version_at_least(...)`` or ``if hasattr(obj, "NAME")``, or read with
``getattr(obj, "NAME", default)``. Objects are known by a light, flow-insensitive inference: annotations with
the stub types (``trtt.ICudaEngine``), ``trt.X(...)`` constructors, the factory methods in RETURNS, and
subclasses of TensorRT classes. An attribute on an object of unknown type is flagged only when its name exists
in one version's API and not in the other's (e.g. ``.precision``, gone from ILayer in 11).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

DATA = Path(__file__).resolve().parent / "data" / "tensorrt_api"
MODULE_NAMES = {"trt", "trt_module"}  # what the TensorRT module is called in the package's code
STUB_MODULES = {"trtt"}  # the stubs' module, imported under TYPE_CHECKING for annotations
GUARDS = {"version_at_least", "hasattr"}
RETURNS = {
    "create_network": "INetworkDefinition",
    "create_builder_config": "IBuilderConfig",
    "create_optimization_profile": "IOptimizationProfile",
    "deserialize_cuda_engine": "ICudaEngine",
    "create_execution_context": "IExecutionContext",
    "create_engine_inspector": "EngineInspector",
    "create_timing_cache": "ITimingCache",
    "build_serialized_network": "IHostMemory",
    "get_input": "ITensor",
    "get_output": "ITensor",
    "get_layer": "ILayer",
}


def load_names(version: str) -> set[str]:
    lines = (DATA / f"names_{version}.txt").read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    name: str
    problem: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.name}: {self.problem}"


class _Checker(ast.NodeVisitor):
    def __init__(self, path: str, versions: dict[str, set[str]]) -> None:
        self.path, self.versions = path, versions
        self.findings: list[Finding] = []
        self.types: dict[str, str] = {}  # variable or self.attribute -> TensorRT class ("": known not to be one)
        self.own_attributes: set[str] = set()  # attributes the class being visited sets on self
        self.checked: list[str] = []  # every TensorRT name looked up
        self.guarded = 0
        self.classes = {n for names in versions.values() for n in names if "." not in n}
        members: dict[str, set[str]] = {}
        for label, names in versions.items():
            members[label] = {n.rsplit(".", 1)[1] for n in names if "." in n and not n.startswith("tensorrt.")}
        every = set.union(*members.values())
        self.version_specific = {m for m in every if any(m not in ms for ms in members.values())}

    # -- types --------------------------------------------------------------------------------
    def _class_of_annotation(self, node) -> str | None:
        if node is None:
            return None
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                node = ast.parse(node.value, mode="eval").body
            except SyntaxError:
                return None
        if isinstance(node, ast.BinOp):  # X | None
            return self._class_of_annotation(node.left) or self._class_of_annotation(node.right)
        if isinstance(node, ast.Subscript):  # Optional[X]
            return self._class_of_annotation(node.slice)
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in MODULE_NAMES | STUB_MODULES
        ):
            return node.attr if node.attr in self.classes else None
        return None

    def _class_of_value(self, node) -> str | None:
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute):
                if isinstance(func.value, ast.Name) and func.value.id in MODULE_NAMES and func.attr in self.classes:
                    return func.attr  # trt.Runtime(...)
                if func.attr in RETURNS:
                    return RETURNS[func.attr]
        return None

    @staticmethod
    def _key(node) -> str | None:
        if isinstance(node, ast.Name):
            return node.id
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            return f"self.{node.attr}"
        return None

    def collect_types(self, tree: ast.AST) -> None:
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for arg in node.args.args + node.args.kwonlyargs:
                    cls = self._class_of_annotation(arg.annotation)
                    if cls:
                        self.types[arg.arg] = cls
                    elif arg.annotation is not None:
                        self.types.setdefault(arg.arg, "")  # annotated with a type of ours: not TensorRT
            elif isinstance(node, ast.AnnAssign):
                key, cls = self._key(node.target), self._class_of_annotation(node.annotation)
                if key and cls:
                    self.types[key] = cls
            elif isinstance(node, ast.Assign) and len(node.targets) == 1:
                key, cls = self._key(node.targets[0]), self._class_of_value(node.value)
                if key and cls:
                    self.types.setdefault(key, cls)
            elif isinstance(node, ast.ClassDef):
                for base in node.bases:
                    cls = self._class_of_annotation(base)
                    if cls:
                        self.types[f"class:{node.name}"] = cls

    def _type_of(self, node) -> str | None:
        """The TensorRT class of ``node``, "" for an object known not to be TensorRT's, None when unknown."""
        if isinstance(node, ast.Name) and node.id == "self":
            return self.types.get("self", "")
        key = self._key(node)
        if key is not None and key in self.types:
            return self.types[key]
        if isinstance(node, ast.Call):
            return self._class_of_value(node)
        return None

    # -- checks -------------------------------------------------------------------------------
    def _report(self, node, name: str, problem: str) -> None:
        if not self.guarded:
            self.findings.append(Finding(self.path, node.lineno, name, problem))

    def _check_qualified(self, node, name: str) -> None:
        self.checked.append(name)
        present = [label for label, names in self.versions.items() if name in names]
        if not present:
            self._report(node, name, "in no TensorRT version's API (misspelt, or not a TensorRT name)")
        elif len(present) < len(self.versions):
            missing = sorted(set(self.versions) - set(present))
            self._report(node, name, f"missing in TensorRT {', '.join(missing)}: guard it with version_at_least")

    def visit_If(self, node: ast.If) -> None:
        test_calls = {
            n.func.id for n in ast.walk(node.test) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        self.visit(node.test)
        if test_calls & GUARDS:
            self.guarded += 1
            for child in node.body:
                self.visit(child)
            self.guarded -= 1
        else:
            for child in node.body:
                self.visit(child)
        for child in node.orelse:
            self.visit(child)

    def visit_Call(self, node: ast.Call) -> None:
        if isinstance(node.func, ast.Name) and node.func.id == "getattr" and len(node.args) >= 3:
            self.visit(node.args[0])  # getattr(obj, "NAME", default): a guarded read of NAME
            return
        self.generic_visit(node)

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        """``self`` is of the TensorRT base class in a subclass of one (but for the attributes the subclass sets
        itself), and of a class of ours otherwise."""
        base = self.types.get(f"class:{node.name}", "")
        own = {
            t.attr
            for n in ast.walk(node)
            if isinstance(n, (ast.Assign, ast.AnnAssign))
            for t in (n.targets if isinstance(n, ast.Assign) else [n.target])
            if isinstance(t, ast.Attribute) and isinstance(t.value, ast.Name) and t.value.id == "self"
        }
        saved = (self.types.get("self"), self.own_attributes)
        self.types["self"], self.own_attributes = base, own
        self.generic_visit(node)
        self.types["self"], self.own_attributes = saved[0] or "", saved[1]

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("__"):
            return self.generic_visit(node)
        value = node.value
        if isinstance(value, ast.Name) and value.id in MODULE_NAMES:
            name = node.attr if node.attr in self.classes else f"tensorrt.{node.attr}"
            self._check_qualified(node, name)
            return
        if (
            isinstance(value, ast.Attribute)
            and isinstance(value.value, ast.Name)
            and value.value.id in MODULE_NAMES
            and value.attr in self.classes
        ):
            self._check_qualified(node, f"{value.attr}.{node.attr}")  # trt.Class.MEMBER
            self.visit(value)
            return
        if isinstance(value, ast.Name) and value.id in STUB_MODULES:
            return  # an annotation's type
        cls = self._type_of(value)
        if isinstance(value, ast.Name) and value.id == "self" and node.attr in self.own_attributes:
            cls = ""  # set by our own class (also in a subclass of a TensorRT class)
        if cls:
            self._check_qualified(node, f"{cls}.{node.attr}")
        elif cls is None and node.attr in self.version_specific:
            self._report(
                node, f".{node.attr}", "a name in only one TensorRT version's API, on an object of unknown type"
            )
        self.generic_visit(node)


def check_source(source: str, path: str = "<source>", checked: list[str] | None = None) -> list[Finding]:
    """The findings for one module's source text; ``checked`` receives every TensorRT name looked up."""
    versions = {"10.3": load_names("10.3"), "11.x": load_names("11")}
    tree = ast.parse(source)
    checker = _Checker(path, versions)
    checker.collect_types(tree)
    checker.visit(tree)
    if checked is not None:
        checked.extend(checker.checked)
    return checker.findings


def tensorrt_modules(package: Path) -> list[Path]:
    """The package's modules that use TensorRT (they name its module ``trt``)."""
    return sorted(
        p for p in package.rglob("*.py") if "import tensorrt" in p.read_text() or "require_tensorrt(" in p.read_text()
    )
