import ast

from jupyter_ext.notebook.names import analyse, free_variables
from jupyter_ext.notebook.source import parse, to_python


def usage(code: str):
    return analyse(ast.parse(code))


def test_reads_before_definitions_in_order():
    u = usage("x = a + 1\ny = x * b\nb = 2")
    assert u.reads == ["a", "b"]
    assert u.defines == {"x", "y", "b"}


def test_scopes_functions_lambdas_comprehensions():
    u = usage(
        "def f(p, q=default):\n    local = p + glob\n    return [local * i for i in q]\n"
        "g = lambda z: z + offset\n"
        "squares = [k * factor for k in items]\n"
        "class C(Base):\n    attr = value\n"
    )
    assert set(u.reads) == {"default", "glob", "offset", "factor", "items", "Base", "value"}
    assert {"f", "g", "squares", "C"} <= u.defines
    assert "i" not in u.reads and "k" not in u.reads and "local" not in u.reads


def test_in_place_mutation_counts_as_producing():
    u = usage(
        "model.fit(X, y)\ndf['c'] = 1\nobj.attr = 2\ntotal += 3\nframe.dropna(inplace=True)\nitems.append(4)"
    )
    assert u.modifies == {"model", "df", "obj", "total", "frame", "items"}
    assert {"model", "X", "y", "df", "obj", "total", "frame", "items"} == set(u.reads)
    assert "df" not in u.defines  # mutated, not rebound


def test_control_flow_bindings():
    u = usage(
        "for i, (a, b) in enumerate(pairs):\n    pass\n"
        "with open(path) as fh:\n    text = fh.read()\n"
        "try:\n    pass\nexcept ValueError as err:\n    msg = str(err)\n"
        "if (n := len(text)) > 3:\n    big = True\n"
        "import os.path\nfrom json import loads as jl\n"
    )
    assert set(u.reads) == {"enumerate", "pairs", "open", "path", "ValueError", "str", "len"}
    assert {"i", "a", "b", "fh", "text", "err", "msg", "n", "big", "os", "jl"} <= u.defines


def test_free_variables_of_function():
    tree = ast.parse("def helper(x):\n    return x * threshold + len(cache)\n")
    assert free_variables(tree.body[0]) == {"threshold", "len", "cache"}


def test_magics_and_shell_lines():
    assert to_python("x = 1") == "x = 1"  # untouched fast path
    tree = parse("files = !ls\n%time n = len(files)\n!echo hi\n%matplotlib inline")
    u = analyse(tree)
    assert {"files", "n"} <= u.defines
    assert u.reads == ["get_ipython", "len"]
    cell_magic = analyse(parse("%%time\nresult = compute(data)"))
    assert cell_magic.reads == ["compute", "data"] and cell_magic.defines == {"result"}


def test_star_import_is_flagged():
    assert usage("from math import *").star_import
