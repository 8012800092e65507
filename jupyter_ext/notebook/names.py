"""Which names a piece of code reads, defines and modifies, at module level.

This is the heart of the data-flow analysis: a step *reads* a name it uses before defining it; it
*defines* a name it binds; it *modifies* a name it mutates in place (``df["a"] = ...``, ``x += 1``,
``model.fit(...)``), which makes it the latest producer of that name for later steps.

Function and class bodies count at definition time: their free variables are reads of the module.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

# Names every kernel provides.
KERNEL_NAMES = frozenset(dir(builtins)) | {"get_ipython", "display", "In", "Out", "exit", "quit", "__name__"}

# Method calls that mutate their receiver in common data-science libraries; calling one on a name makes the
# step a producer of that name. A heuristic: ``prev:`` tags force ordering where it is not enough.
MUTATING_METHODS = frozenset(
    {
        "fit", "partial_fit", "fit_transform", "fit_predict", "train", "compile", "load_state_dict",
        "append", "extend", "insert", "update", "pop", "popitem", "remove", "clear", "sort", "reverse",
        "add", "discard", "setdefault", "resize", "fill", "put", "write", "seek", "close",
        "to", "cuda", "cpu", "eval", "requires_grad_", "zero_grad", "step", "backward",
    }
)  # fmt: skip


@dataclass
class NameUsage:
    reads: list[str] = field(default_factory=list)  # in first-read order
    defines: set[str] = field(default_factory=set)
    modifies: set[str] = field(default_factory=set)
    star_import: bool = False

    @property
    def produces(self) -> set[str]:
        return self.defines | self.modifies


def analyse(tree: ast.Module, usage: NameUsage | None = None) -> NameUsage:
    """Analyse module-level code, statement by statement, in execution order.

    Pass the ``usage`` of the code that ran before (earlier cells of the same step) to continue from it.
    """
    usage = usage or NameUsage()
    for stmt in tree.body:
        _Statement(usage).visit(stmt)
        if isinstance(stmt, ast.ImportFrom) and any(a.name == "*" for a in stmt.names):
            usage.star_import = True
    return usage


def free_variables(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef) -> set[str]:
    """Global names a function/class body (and its defaults/decorators) reads."""
    return _free_in_scope(node)


class _Statement(ast.NodeVisitor):
    """Visits one module-level statement and records reads before definitions.

    ``visit`` and ``generic_visit`` are ``ast.NodeVisitor``'s, made cheaper (the method looked up once per
    node type, no generator per node): the walk is most of a big cell's analysis.
    """

    _methods: dict[type, str] = {}  # node type -> name of the visit method, shared by all instances

    def __init__(self, usage: NameUsage) -> None:
        self.usage = usage

    def visit(self, node: ast.AST) -> None:
        kind = type(node)
        name = self._methods.get(kind)
        if name is None:
            name = f"visit_{kind.__name__}"
            self._methods[kind] = name if hasattr(self, name) else "generic_visit"
            name = self._methods[kind]
        getattr(self, name)(node)

    def generic_visit(self, node: ast.AST) -> None:
        for field_name in node._fields:
            value = getattr(node, field_name, None)
            if isinstance(value, list):
                for item in value:
                    if isinstance(item, ast.AST):
                        self.visit(item)
            elif isinstance(value, ast.AST):
                self.visit(value)

    def _read(self, name: str) -> None:
        if name not in self.usage.defines and name not in self.usage.reads:
            self.usage.reads.append(name)

    def _define(self, name: str) -> None:
        self.usage.defines.add(name)

    def visit_Constant(self, node: ast.Constant) -> None:
        """Nothing to record. Defined here because NodeVisitor's own visit_Constant looks for the
        deprecated visit_Num/visit_Str on every literal: ~20 us each, most of a data-heavy cell's time."""

    # -- bindings ------------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if isinstance(node.ctx, ast.Load):
            self._read(node.id)
        elif isinstance(node.ctx, ast.Store):
            self._define(node.id)
        # del x: the name is gone; nothing downstream can read it from here

    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)  # the right-hand side runs first
        for target in node.targets:
            self._visit_target(target)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        if node.value is not None:
            self.visit(node.value)
            self._visit_target(node.target)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        root = _root_name(node.target)
        if root:
            self._read(root)
            self.usage.modifies.add(root)
            if isinstance(node.target, ast.Name):
                self._define(root)
        self.generic_visit(node.target)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._define(node.target.id)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._visit_target(node.target)
        for stmt in node.body + node.orelse:
            self.visit(stmt)

    visit_AsyncFor = visit_For

    def visit_With(self, node: ast.With | ast.AsyncWith) -> None:
        for item in node.items:
            self.visit(item.context_expr)
            if item.optional_vars is not None:
                self._visit_target(item.optional_vars)
        for stmt in node.body:
            self.visit(stmt)

    visit_AsyncWith = visit_With

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name:
            self._define(node.name)
        for stmt in node.body:
            self.visit(stmt)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "*":
                self.usage.star_import = True
            else:
                self._define(alias.asname or alias.name.split(".")[0])

    visit_ImportFrom = visit_Import

    def visit_Global(self, node: ast.Global) -> None:
        pass

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> None:
        for name in sorted(_free_in_scope(node)):
            self._read(name)
        for name in _declared_globals(node):
            self._define(name)
        self._define(node.name)

    visit_AsyncFunctionDef = visit_FunctionDef
    visit_ClassDef = visit_FunctionDef

    def visit_Lambda(self, node: ast.Lambda) -> None:
        for name in sorted(_free_in_scope(node)):
            self._read(name)

    def _visit_comprehension(self, node: ast.AST) -> None:
        for name in sorted(_free_in_scope(node)):
            self._read(name)

    visit_ListComp = visit_SetComp = visit_DictComp = visit_GeneratorExp = _visit_comprehension

    # -- mutation ------------------------------------------------------------------------------------
    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in MUTATING_METHODS:
            root = _root_name(func.value)
            if root:
                self.visit(func.value)
                self.usage.modifies.add(root)
        elif any(k.arg == "inplace" for k in node.keywords) and isinstance(func, ast.Attribute):
            root = _root_name(func.value)
            if root:
                self.usage.modifies.add(root)
        self.generic_visit(node)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            if isinstance(target, ast.Name):
                self.usage.defines.discard(target.id)
            else:
                self._visit_target(target)

    def _visit_target(self, target: ast.expr) -> None:
        if isinstance(target, ast.Name):
            self._define(target.id)
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._visit_target(element)
        elif isinstance(target, ast.Starred):
            self._visit_target(target.value)
        else:  # obj.attr = ..., obj[key] = ...: reads obj, and modifies it in place
            root = _root_name(target)
            self.generic_visit(target)
            if root:
                self.usage.modifies.add(root)


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute | ast.Subscript | ast.Starred):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _declared_globals(node: ast.AST) -> set[str]:
    names: set[str] = set()
    for child in ast.walk(node):
        if isinstance(child, ast.Global):
            names.update(child.names)
    return names


def _free_in_scope(node: ast.AST) -> set[str]:
    """Names a nested scope (function, lambda, class, comprehension) reads from the module."""
    loads: set[str] = set()
    local: set[str] = set()
    outer: list[ast.AST] = []  # parts evaluated in the enclosing scope: decorators, defaults, bases
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
        args = node.args
        for arg in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
            if arg is not None:
                local.add(arg.arg)
                if getattr(arg, "annotation", None) is not None:
                    outer.append(arg.annotation)
        outer.extend(d for d in args.defaults + args.kw_defaults if d is not None)
        if not isinstance(node, ast.Lambda):
            outer.extend(node.decorator_list)
            if node.returns is not None:
                outer.append(node.returns)
        body = node.body if isinstance(node.body, list) else [node.body]
    elif isinstance(node, ast.ClassDef):
        outer.extend(node.decorator_list + node.bases + [k.value for k in node.keywords])
        body = node.body
    else:  # comprehension: the first iterable runs in the enclosing scope
        generators = node.generators
        outer.append(generators[0].iter)
        body = [node]
    globals_declared = _declared_globals(node)
    for part in body:
        for child in ast.walk(part):
            if isinstance(child, ast.Name):
                (loads if isinstance(child.ctx, ast.Load) else local).add(child.id)
            elif isinstance(child, ast.arg):
                local.add(child.arg)
            elif (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and child is not node
            ):
                local.add(child.name)
            elif isinstance(child, ast.alias):
                local.add(child.asname or child.name.split(".")[0])
            elif isinstance(child, ast.ExceptHandler) and child.name:
                local.add(child.name)
    if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
        for gen in node.generators:
            for child in ast.walk(gen.target):
                if isinstance(child, ast.Name):
                    local.add(child.id)
        loads.discard(None)
    free = (loads - local) | (loads & globals_declared)
    for part in outer:
        for child in ast.walk(part):
            if isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load):
                free.add(child.id)
    return free
