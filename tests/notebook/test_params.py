import pytest

from jupyter_ext.errors import NotebookError, ParameterError
from jupyter_ext.notebook.params import parse_parameters_cell, resolve


def params(source):
    return parse_parameters_cell(source, notebook="nb.ipynb", cell=2)


def test_types_are_inferred_from_literals():
    parsed = params(
        "a = 1\nb = 0.5\nc = 'x'\nd = True\ne = [1, 2]\nf = {'k': 1}\ng: int = -3\nh = (1, 2)\ni = None"
    )
    assert [(p.name, p.type, p.default) for p in parsed] == [
        ("a", "int", 1), ("b", "float", 0.5), ("c", "str", "x"), ("d", "bool", True), ("e", "list", [1, 2]),
        ("f", "dict", {"k": 1}), ("g", "int", -3), ("h", "list", [1, 2]), ("i", "str", None),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("a = compute()", "parameter 'a' (line 1) is not a literal value"),
        ("a = 1\nprint(a)", "line 2 is not a literal assignment"),
        ("a = b = 1", "line 1 is not a literal assignment"),
        ("a = {1, 2}", "unsupported type set"),
        ("a = (", "syntax error"),
    ],
)
def test_non_literal_parameters_cell_is_an_error(source, expected):
    with pytest.raises(NotebookError) as info:
        params(source)
    assert str(info.value).startswith("nb.ipynb: cell 2: ")
    assert expected in str(info.value)


def test_overrides_are_typed_values():
    parsed = params("lr = 0.1\nepochs = 3\nname = 'a'\nfast = False\nlayers = [1]")
    values = resolve(parsed, ["lr=1", "epochs=10", "name=hello world", "fast=True", "layers=[64, 32]"])
    assert values == {"lr": 1.0, "epochs": 10, "name": "hello world", "fast": True, "layers": [64, 32]}
    assert resolve(parsed, ["name=2024"])["name"] == "2024"  # text stays text for a str parameter
    # a value that looks like code is not evaluated: it is just a string for str, an error otherwise
    assert resolve(parsed, ["name=__import__('os').system('x')"])["name"] == "__import__('os').system('x')"
    with pytest.raises(ParameterError, match="is not a valid int"):
        resolve(parsed, ["epochs=__import__('os')"])


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("epochs=1.5", "parameter 'epochs' (-p): expects int, got float 1.5"),
        ("epochs=abc", "'abc' is not a valid int"),
        ("fast=1", "expects bool, got int 1"),
        ("nope=1", "unknown parameter 'nope'. Known parameters: lr, epochs, fast"),
        ("epochs", "'epochs' is not NAME=VALUE"),
    ],
)
def test_bad_overrides(override, expected):
    parsed = params("lr = 0.1\nepochs = 3\nfast = False")
    with pytest.raises(ParameterError) as info:
        resolve(parsed, [override])
    assert expected in str(info.value)
