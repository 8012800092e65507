"""Round-trips through the real libraries, the fallbacks, the registry, atomic writes and the error texts."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from jupyter_ext.errors import MarshalError
from jupyter_ext.runtime import marshal


@pytest.fixture(autouse=True)
def _restore_registry():
    saved = list(marshal._registry)
    yield
    marshal._registry[:] = saved


def roundtrip(value, tmp_path: Path, name: str = "v"):
    record = marshal.save(name, value, tmp_path, step="make")
    return record, marshal.load(name, tmp_path, step="use")


def files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


class Point:
    def __init__(self, x: int, y: int) -> None:
        self.x, self.y = x, y

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Point) and (self.x, self.y) == (other.x, other.y)


# --- pandas -------------------------------------------------------------------------------------------


def test_dataframe_roundtrips_through_parquet(tmp_path):
    df = pd.DataFrame(
        {
            "when": pd.date_range("2024-01-01", periods=4, freq="h"),
            "kind": pd.Categorical(["a", "b", "a", "c"], ordered=True),
            "n": np.array([1, 2, 3, 4], dtype="int32"),
            "x": [0.5, np.nan, 2.5, -1.0],
            "label": ["w", "x", None, "z"],
        },
        index=pd.Index([10, 20, 30, 40], name="row_id"),
    )
    record, back = roundtrip(df, tmp_path, "df")

    assert record == {
        "name": "df",
        "backend": "dataframe",
        "file": "df.parquet",
        "bytes": (tmp_path / "df.parquet").stat().st_size,
        "type": "pandas.DataFrame",
    }
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert json.loads((tmp_path / "_index.json").read_text()) == {"df": record}


ARROW = pd.ArrowDtype
PARQUET_EXACT = {
    "int8": np.arange(3, dtype="int8"),
    "uint64": np.arange(3, dtype="uint64"),
    "float16": np.arange(3, dtype="float16"),
    "bool": np.array([True, False, True]),
    "datetime_ns": pd.date_range("2020", periods=3).as_unit("ns"),
    "datetime_ms": pd.date_range("2020", periods=3).as_unit("ms"),
    "datetime_tz": pd.date_range("2020", periods=3, tz="Europe/Paris"),
    "timedelta_s": pd.to_timedelta([1, 2, 3], unit="s").as_unit("s"),
    "category_unused": pd.Categorical(["a", None, "b"], categories=["b", "a", "z"]),
    "Int64": pd.array([1, None, 3], dtype="Int64"),
    "boolean": pd.array([True, None, False], dtype="boolean"),
    "str": pd.array(["a", None, "c"], dtype="str"),
    "string_pyarrow": pd.array(["a", None, "c"], dtype="string[pyarrow]"),
    "object_str": np.array(["a", "b", "c"], dtype=object),
    "object_bytes": np.array([b"a", b"b", b"c"], dtype=object),
    "period": pd.period_range("2020", periods=3, freq="M"),
    "interval": pd.interval_range(0.0, 3.0),
    "arrow_int": pd.array([1, None, 3], dtype=ARROW(pa.int32())),
    "arrow_timestamp_s": pd.array([1, 2, None], dtype=ARROW(pa.timestamp("s"))),
    "arrow_date": pd.array([None, None, None], dtype=ARROW(pa.date32())),
}


@pytest.mark.parametrize("column", PARQUET_EXACT)
def test_parquet_keeps_these_dtypes_exactly(tmp_path, column):
    df = pd.DataFrame({column: pd.Series(PARQUET_EXACT[column], dtype=None)}).set_axis(["r1", "r2", "r3"])
    if column.startswith("object"):
        df[column] = df[column].astype(object)  # pandas 3 would make the strings "str"
    record, back = roundtrip(df, tmp_path)
    assert record["backend"] == "dataframe"
    pd.testing.assert_frame_equal(back, df, check_exact=True)


def _obj(*items) -> np.ndarray:
    arr = np.empty(len(items), dtype=object)
    arr[:] = items
    return arr


# Each of these would change on a Parquet round-trip (or not write at all), so they go to cloudpickle.
PARQUET_LOSSY = {
    "int column name": lambda: pd.DataFrame({0: [1, 2], "b": [3, 4]}),
    "duplicate columns": lambda: pd.DataFrame([[1, 2]], columns=["a", "a"]),
    "mixed object column": lambda: pd.DataFrame({"m": _obj(1, "a")}),
    "dicts in a column": lambda: pd.DataFrame({"d": _obj({"a": 1}, {"b": 2})}),
    "lists in a column": lambda: pd.DataFrame({"l": _obj([1], [2, 3])}),
    "None and NaN strings": lambda: pd.DataFrame({"s": pd.Series(["a", None, np.nan], dtype=object)}),
    "datetime64[s]": lambda: pd.DataFrame({"t": pd.date_range("2020", periods=2).as_unit("s")}),
    "int categories": lambda: pd.DataFrame({"c": pd.Categorical([1, 2, 1])}),
    "string[python]": lambda: pd.DataFrame({"s": pd.array(["a", "b"], dtype="string[python]")}),
    "complex": lambda: pd.DataFrame({"z": np.array([1 + 2j, 3j])}),
    "sparse": lambda: pd.DataFrame({"s": pd.arrays.SparseArray([0, 0, 1])}),
    "arrow string": lambda: pd.DataFrame({"s": pd.array(["a"], dtype=ARROW(pa.string()))}),
    "arrow list": lambda: pd.DataFrame({"l": pd.array([[1], [2, 3]], dtype=ARROW(pa.list_(pa.int64())))}),
    "int index name": lambda: pd.DataFrame({"a": [1, 2]}, index=pd.Index([1, 2], name=0)),
    "mixed index": lambda: pd.DataFrame({"a": [1, 2]}, index=_obj("x", 1)),
    "tuple in attrs": lambda: pd.DataFrame({"a": [1]}).pipe(lambda d: d.attrs.update(k=(1, 2)) or d),
}


@pytest.mark.parametrize("case", PARQUET_LOSSY)
def test_frames_parquet_cannot_represent_fall_back_to_pickle(tmp_path, case):
    df = PARQUET_LOSSY[case]()
    record, back = roundtrip(df, tmp_path)
    assert record["backend"] == "cloudpickle"
    assert files(tmp_path) == ["_index.json", "v.pkl"]
    pd.testing.assert_frame_equal(back, df, check_exact=True)
    assert back.attrs == df.attrs


@pytest.mark.parametrize(
    "index",
    [
        pd.RangeIndex(10, 20, 5, name="r"),
        pd.date_range("2020", periods=2, freq="W-MON", name="week"),
        pd.timedelta_range(0, periods=2, freq="h"),
        pd.MultiIndex.from_product([["x"], [1, 2]], names=["k", "n"]),
        pd.Index(["a", "b"], dtype=object, name="ids"),
        pd.CategoricalIndex(["a", "b"]),
    ],
    ids=["range", "datetime-freq", "timedelta-freq", "multiindex", "object", "categorical"],
)
def test_parquet_keeps_the_index(tmp_path, index):
    df = pd.DataFrame({"a": [1.0, 2.0]}, index=index)
    record, back = roundtrip(df, tmp_path)
    assert record["backend"] == "dataframe"
    pd.testing.assert_frame_equal(back, df, check_exact=True, check_freq=True)


def test_parquet_keeps_column_labels_and_attrs(tmp_path):
    df = pd.DataFrame(
        [[1, 2]], columns=pd.MultiIndex.from_tuples([("a", "x"), ("a", "y")], names=["g", None])
    )
    df.attrs = {"source": "s3://bucket/x", "rows": 1}
    plain = pd.DataFrame([[1, 2]], columns=pd.Index(["a", "b"], dtype=object, name="cols"))
    for value in (df, plain):
        record, back = roundtrip(value, tmp_path)
        assert record["backend"] == "dataframe"
        pd.testing.assert_frame_equal(back, value, check_exact=True)
        assert back.attrs == value.attrs


@pytest.mark.parametrize("name", ["price", None, 3, 2.5])
def test_series_roundtrips_with_name_and_index(tmp_path, name):
    s = pd.Series([1.5, None, 3.0], index=pd.Index(["a", "b", "c"], name="key"), name=name)
    s.attrs = {"unit": "EUR"}
    record, back = roundtrip(s, tmp_path)
    assert record["backend"] == "series"
    assert record["file"] == "v.parquet"
    pd.testing.assert_series_equal(back, s, check_exact=True)
    assert back.attrs == {"unit": "EUR"}


def test_series_parquet_cannot_represent_falls_back(tmp_path):
    s = pd.Series(_obj(1, "a", None), name=("tuple", "name"))
    record, back = roundtrip(s, tmp_path)
    assert record["backend"] == "cloudpickle"
    pd.testing.assert_series_equal(back, s)


def test_backend_change_removes_the_old_file(tmp_path):
    marshal.save("df", pd.DataFrame({"a": [1]}), tmp_path)
    marshal.save("df", pd.DataFrame({"a": _obj(1, "x")}), tmp_path)
    assert files(tmp_path) == ["_index.json", "df.pkl"]
    assert marshal.load("df", tmp_path)["a"].tolist() == [1, "x"]


# --- numpy, sklearn, cloudpickle ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "arr",
    [
        np.asfortranarray(np.random.default_rng(0).normal(size=(3, 4)).astype("float32")),
        np.arange(12, dtype="int64").reshape(2, 2, 3)[:, ::-1],
        np.array(["2020-01-01", "NaT"], dtype="datetime64[ms]"),
        np.array([(1, 2.0)], dtype=[("a", "i4"), ("b", "f8")]),
        np.array(["unicode", "é"]),
    ],
    ids=["fortran-float32", "strided-int", "datetime", "structured", "unicode"],
)
def test_ndarray_roundtrips_as_npy(tmp_path, arr):
    record, back = roundtrip(arr, tmp_path)
    assert (record["backend"], record["file"]) == ("ndarray", "v.npy")
    assert back.dtype == arr.dtype
    np.testing.assert_array_equal(back, arr)
    assert back.flags.f_contiguous == arr.flags.f_contiguous


def test_object_ndarray_and_subclasses_fall_back_to_cloudpickle(tmp_path):
    arr = _obj({"a": 1}, [2], "three")
    record, back = roundtrip(arr, tmp_path)
    assert record["backend"] == "cloudpickle"
    assert back.dtype == object and back.tolist() == arr.tolist()

    masked = np.ma.masked_array([1, 2, 3], mask=[0, 1, 0])  # .npy would drop the mask
    record, back = roundtrip(masked, tmp_path)
    assert record["backend"] == "cloudpickle"
    assert back.mask.tolist() == [False, True, False]


def test_fitted_sklearn_estimator_predicts_the_same_after_load(tmp_path):
    from sklearn.datasets import make_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = make_classification(n_samples=60, n_features=5, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X, y)
    record, back = roundtrip(model, tmp_path, "model")
    assert (record["backend"], record["file"]) == ("sklearn", "model.joblib")
    assert record["type"] == "sklearn.pipeline.Pipeline"
    np.testing.assert_array_equal(back.predict_proba(X), model.predict_proba(X))


def test_estimator_joblib_cannot_pickle_goes_to_cloudpickle(tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    model = FunctionTransformer(lambda X: X * 2).fit([[1.0]])
    record, back = roundtrip(model, tmp_path)
    assert record["backend"] == "cloudpickle"
    assert files(tmp_path) == ["_index.json", "v.pkl"]
    assert back.transform(np.array([[3.0]])).tolist() == [[6.0]]


def test_other_values_go_through_cloudpickle(tmp_path):
    offset = 10
    values = {
        "config": {"lr": 0.1, "layers": [64, 32], "name": "run"},
        "items": [1, "two", 3.0, None],
        "point": Point(1, 2),
        "shift": lambda x: x + offset,  # a closure: plain pickle would refuse it
        "scalar": np.float32(1.5),
    }
    records = marshal.save_all(values, tmp_path, step="make")
    assert {r["backend"] for r in records.values()} == {"cloudpickle"}
    assert records["point"]["type"] == f"{__name__}.Point"
    back = marshal.load_all(list(values), tmp_path, step="use")
    assert back["config"] == values["config"] and back["items"] == values["items"]
    assert back["point"] == Point(1, 2)
    assert back["shift"](1) == 11
    assert back["scalar"] == np.float32(1.5) and back["scalar"].dtype == np.float32


def test_torch_tensor_roundtrips(tmp_path):
    import torch

    t = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    record, back = roundtrip(t, tmp_path)
    assert record["backend"] == "torch"
    assert torch.equal(back, t)


def test_torch_module_roundtrips(tmp_path):
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    record, back = roundtrip(module, tmp_path)
    assert record["backend"] == "torch"
    x = torch.ones(2, 3)
    assert torch.equal(back(x), module(x))


def test_xgboost_model_roundtrips(tmp_path):
    import xgboost

    X = np.random.default_rng(0).normal(size=(40, 3))
    model = xgboost.XGBRegressor(n_estimators=3).fit(X, X[:, 0])
    record, back = roundtrip(model, tmp_path)
    assert (record["backend"], record["file"]) == ("xgboost-XGBRegressor", "v.xgb.json")
    np.testing.assert_allclose(back.predict(X), model.predict(X))


# --- registry -----------------------------------------------------------------------------------------


class Celsius:
    def __init__(self, degrees: float) -> None:
        self.degrees = degrees


class CelsiusBackend(marshal.Backend):
    name = "celsius"
    suffix = ".celsius.txt"

    def matches(self, value) -> bool:
        return type(value).__qualname__ == "Celsius"

    def save(self, value, path: Path) -> None:
        path.write_text(f"{value.degrees}\n")

    def load(self, path: Path):
        return Celsius(float(path.read_text()))


def test_registered_backend_is_listed_used_and_removable(tmp_path):
    marshal.register(CelsiusBackend())
    names = [b.name for b in marshal.backends()]
    assert names[-2:] == ["celsius", "cloudpickle"]  # appended, but still before the fallback
    assert marshal.backend_for(Celsius(21.5)).name == "celsius"

    record, back = roundtrip(Celsius(21.5), tmp_path, "temp")
    assert (record["backend"], record["file"]) == ("celsius", "temp.celsius.txt")
    assert (tmp_path / "temp.celsius.txt").read_text() == "21.5\n"
    assert back.degrees == 21.5

    removed = marshal.unregister("celsius")
    assert isinstance(removed, CelsiusBackend)
    assert "celsius" not in [b.name for b in marshal.backends()]
    assert marshal.backend_for(Celsius(1)).name == "cloudpickle"
    with pytest.raises(KeyError):
        marshal.unregister("celsius")


def test_register_first_takes_precedence_and_same_name_replaces(tmp_path):
    class CsvFrames(marshal.Backend):
        name = "csv"
        suffix = ".csv"

        def matches(self, value) -> bool:
            return type(value).__name__ == "DataFrame"

        def save(self, value, path: Path) -> None:
            value.to_csv(path, index=False)

        def load(self, path: Path):
            return pd.read_csv(path)

    marshal.register(CsvFrames(), first=True)
    marshal.register(CsvFrames(), first=True)  # re-running the cell that registers it
    assert [b.name for b in marshal.backends()].count("csv") == 1
    assert marshal.backends()[0].name == "csv"
    record, back = roundtrip(pd.DataFrame({"a": [1, 2]}), tmp_path)
    assert record["file"] == "v.csv"
    assert back["a"].tolist() == [1, 2]

    with pytest.raises(ValueError, match="suffix"):
        marshal.register(type("Bad", (marshal.Backend,), {"name": "bad", "suffix": "csv"})())
    with pytest.raises(ValueError, match="fallback"):
        marshal.register(marshal.CloudpickleBackend())


def test_builtin_backend_order():
    names = [b.name for b in marshal.backends()]
    assert names[:3] == ["dataframe", "series", "ndarray"]
    assert names[-1] == "cloudpickle"
    assert names.index("sklearn") < names.index("cloudpickle")


# --- atomic writes ------------------------------------------------------------------------------------


class Exploding:
    pass


class HalfWriteBackend(marshal.Backend):
    """Writes part of the file, then fails as a full disk would."""

    name = "half"
    suffix = ".half"

    def matches(self, value) -> bool:
        return isinstance(value, Exploding)

    def save(self, value, path: Path) -> None:
        with open(path, "wb") as f:
            f.write(b"partial")
            f.flush()
            raise OSError(28, "No space left on device")

    def load(self, path: Path):
        raise AssertionError("never written")


def test_failed_write_leaves_no_file_and_keeps_the_index(tmp_path):
    marshal.register(HalfWriteBackend(), first=True)
    marshal.save("keep", [1, 2], tmp_path)
    before_files, before_index = files(tmp_path), (tmp_path / "_index.json").read_bytes()

    with pytest.raises(MarshalError, match="No space left on device"):
        marshal.save("boom", Exploding(), tmp_path, step="make")

    assert files(tmp_path) == before_files == ["_index.json", "keep.pkl"]
    assert (tmp_path / "_index.json").read_bytes() == before_index


def test_failed_overwrite_keeps_the_previous_value(tmp_path):
    marshal.save("x", {"version": 1}, tmp_path)
    lock = threading.Lock()
    with pytest.raises(MarshalError):
        marshal.save("x", lambda: lock, tmp_path)
    assert files(tmp_path) == ["_index.json", "x.pkl"]
    assert marshal.load("x", tmp_path) == {"version": 1}


def test_save_all_indexes_what_was_written_before_a_failure(tmp_path):
    with pytest.raises(MarshalError, match="'bad'"):
        marshal.save_all({"good": 1, "bad": (i for i in range(3)), "later": 2}, tmp_path, step="make")
    assert files(tmp_path) == ["_index.json", "good.pkl"]
    assert list(json.loads((tmp_path / "_index.json").read_text())) == ["good"]


# --- errors -------------------------------------------------------------------------------------------


def test_unpicklable_generator_error_names_variable_type_and_step(tmp_path):
    gen = (i for i in range(3))
    with pytest.raises(MarshalError) as info:
        marshal.save("gen", gen, tmp_path, step="load")
    err = info.value
    text = str(err)
    assert "'gen'" in text and "(generator)" in text and "step 'load'" in text
    assert "cannot pickle 'generator' object" in text
    assert "convert it to a list" in text.lower()
    assert err.step == "load"
    assert files(tmp_path) == []


def test_lambda_capturing_a_lock_is_reported(tmp_path):
    lock = threading.Lock()
    with pytest.raises(MarshalError, match=r"cannot save variable 'locked' \(function\).*lock") as info:
        marshal.save("locked", lambda: lock.locked(), tmp_path, step="train")
    assert info.value.step == "train"


def test_load_missing_variable_names_it_the_directory_and_step(tmp_path):
    with pytest.raises(MarshalError) as info:
        marshal.load("features", tmp_path / "nowhere", step="train")
    text = str(info.value)
    assert "'features'" in text and str(tmp_path / "nowhere") in text and "step 'train'" in text
    assert info.value.hint

    marshal.save("other", 1, tmp_path)
    with pytest.raises(MarshalError, match=r"'features'.*not saved in"):
        marshal.load_all(["other", "features"], tmp_path, step="train")


def test_load_reports_a_missing_file_and_an_unknown_backend(tmp_path):
    marshal.save("a", 1, tmp_path)
    (tmp_path / "a.pkl").unlink()
    with pytest.raises(MarshalError, match="is missing although _index.json lists it"):
        marshal.load("a", tmp_path)

    marshal.register(CelsiusBackend())
    marshal.save("t", Celsius(3), tmp_path)
    marshal.unregister("celsius")
    with pytest.raises(MarshalError, match="backend 'celsius', which is not available here"):
        marshal.load("t", tmp_path, step="use")


def test_invalid_variable_name(tmp_path):
    with pytest.raises(MarshalError, match="not a valid variable name"):
        marshal.save("../escape", 1, tmp_path)
    with pytest.raises(MarshalError, match="not a valid variable name"):
        marshal.save("_index", 1, tmp_path)


def test_import_and_plain_values_stay_cheap(tmp_path):
    # Checking a dict against every backend must not import pandas, numpy, sklearn or torch.
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from jupyter_ext.runtime import marshal\n"
        f"marshal.save('d', {{'a': 1}}, Path({str(tmp_path)!r}))\n"
        "print(sorted({'numpy', 'pandas', 'pyarrow', 'sklearn', 'joblib', 'torch', 'xgboost'} & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_load_names_a_module_missing_in_the_loading_step(tmp_path, monkeypatch):
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "cellpipe_test_shapes.py").write_text("class Square:\n    side = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    import cellpipe_test_shapes

    marshal.save("sq", cellpipe_test_shapes.Square(), tmp_path / "data")
    # The loading step's image lacks the module that defines the class.
    monkeypatch.delitem(sys.modules, "cellpipe_test_shapes")
    (tmp_path / "lib" / "cellpipe_test_shapes.py").unlink()
    with pytest.raises(MarshalError, match="No module named 'cellpipe_test_shapes'") as info:
        marshal.load("sq", tmp_path / "data", step="use")
    assert "Install 'cellpipe_test_shapes'" in info.value.hint


def test_unwritable_directory_gets_a_storage_hint(tmp_path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(MarshalError, match="cannot save variable 'x' \\(int\\)") as info:
        marshal.save("x", 1, tmp_path / "file" / "sub", step="make")
    assert "writable" in info.value.hint
