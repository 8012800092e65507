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
        (
            "epochs=1.5",
            "parameter 'epochs' (-p): '1.5' is not a valid int: expected a whole number. E.g. -p epochs=3",
        ),
        ("epochs=abc", "'abc' is not a valid int"),
        ("fast=maybe", "'maybe' is not a valid bool: expected true or false (also yes/no, on/off, 1/0)"),
        ("lr=fast", "'fast' is not a valid float: expected a number"),
        ("nope=1", "unknown parameter 'nope'. Known parameters: lr, epochs, fast"),
        ("epochs", "'epochs' is not NAME=VALUE"),
    ],
)
def test_bad_overrides(override, expected):
    parsed = params("lr = 0.1\nepochs = 3\nfast = False")
    with pytest.raises(ParameterError) as info:
        resolve(parsed, [override])
    assert expected in str(info.value)


@pytest.mark.parametrize(
    ("text", "value"),
    [("true", True), ("false", False), ("True", True), ("FALSE", False), ("yes", True), ("no", False),
     ("1", True), ("0", False), ("on", True), ("off", False)],
)  # fmt: skip
def test_bool_spellings_people_type(text, value):
    assert resolve(params("flag = False"), [f"flag={text}"]) == {"flag": value}


def test_numbers_lists_and_dicts_as_people_type_them():
    parsed = params("epochs = 3\nlr = 0.1\nlayers = [1]\nopts = {}")
    values = resolve(parsed, ["epochs=1e3", "lr=1e-3", "layers=[true, null]", 'opts={"a": false}'])
    assert values == {"epochs": 1000, "lr": 0.001, "layers": [True, None], "opts": {"a": False}}
    assert resolve(parsed, ["epochs=1_000"])["epochs"] == 1000
    assert resolve(parsed, {"epochs": 3.0, "lr": "0.5"}) == {
        "epochs": 3,
        "lr": 0.5,
        "layers": [1],
        "opts": {},
    }
    with pytest.raises(ParameterError, match="'\\[1' is not a valid list: expected a list"):
        resolve(parsed, ["layers=[1"])


def test_names_match_in_either_case():
    parsed = params("LR = 0.1\nBatch_Size = 32")
    assert resolve(parsed, ["lr=0.5", "batch_size=8"]) == {"LR": 0.5, "Batch_Size": 8}  # Kale's spelling
    assert resolve(parsed, {"lr": 1}) == {"LR": 1.0, "Batch_Size": 32}
    both = params("lr = 0.1\nLR = 0.2")
    assert resolve(both, ["LR=1"]) == {"lr": 0.1, "LR": 1.0}  # an exact match wins
    with pytest.raises(ParameterError, match="differ only in case"):
        resolve(both, ["Lr=1"])


@pytest.mark.parametrize(
    "name",
    ["api_token", "password", "secret_key", "dbPassword", "AWS_SECRET_ACCESS_KEY", "apiKey", "github_token",
     "private_key_path", "client_secret", "passwd"],
)  # fmt: skip
def test_a_parameter_named_like_a_credential_is_refused(name):
    with pytest.raises(NotebookError) as caught:
        parse_parameters_cell(f"n = 1\n{name} = 'hunter2'", notebook="nb.ipynb", cell=3)
    text = str(caught.value)
    assert caught.value.cell == 3 and f"parameter '{name}' (line 2) looks like a credential" in text
    assert f"secret:SECRET:KEY:{name.upper()}" in text and "os.environ" in text
    assert "hunter2" not in text  # the value itself is never echoed


@pytest.mark.parametrize(
    "name", ["max_tokens", "tokenizer", "sort_key", "key_column", "n_estimators", "tokens"]
)
def test_ordinary_names_that_contain_credential_words_are_accepted(name):
    assert [p.name for p in parse_parameters_cell(f"{name} = 1", notebook="nb.ipynb", cell=1)] == [name]


def test_credential_parameter_through_the_cli_is_one_line(tmp_path, capsys):
    from jupyter_ext.cli.main import main
    from tests.conftest import make_notebook

    path = make_notebook(
        tmp_path / "nb.ipynb", [(["parameters"], "api_token = 'abc'"), (["step:a"], "x = 1")]
    )
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert (
        err.count("\n") == 1
        and err.startswith("cellpipe: error: ")
        and "cell 1" in err
        and "'abc'" not in err
    )
