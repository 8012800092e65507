"""Save and load the variables that flow between pipeline steps.

Each step runs in a fresh kernel, so a variable that one step produces and another reads travels through a
file. ``save`` picks a *backend* for the value (the first registered one whose ``matches`` says yes), writes
``<directory>/<name><suffix>`` atomically and records the choice in ``<directory>/_index.json``; ``load``
reads the index to know which backend reads the file back.

Built-in backends, tried in this order (cloudpickle is always the last resort):

=================  =============  ==============================================================
name               suffix         values
=================  =============  ==============================================================
dataframe          .parquet       ``pandas.DataFrame`` that Parquet represents exactly
series             .parquet       ``pandas.Series`` that Parquet represents exactly
ndarray            .npy           ``numpy.ndarray`` without Python objects in it
xgboost-<class>    .xgb.json      xgboost ``Booster`` and sklearn-style models (if installed)
sklearn            .joblib        scikit-learn estimators
torch              .pt            torch tensors and modules (if installed)
cloudpickle        .pkl           everything else
=================  =============  ==============================================================

A frame that Parquet cannot round-trip exactly (non-string column names, mixed object columns, an unusual
dtype) goes to cloudpickle instead, transparently: ``matches`` says no, or ``save`` raises
:class:`Unsupported` and the next matching backend is tried.

Adding a type
-------------
Subclass :class:`Backend` and register an instance. Check the type by name so that the check never imports
the library, and import it inside ``save``/``load``::

    from pathlib import Path
    from jupyter_ext.runtime import marshal

    class PolarsFrame(marshal.Backend):
        name = "polars"
        suffix = ".polars.parquet"

        def matches(self, value) -> bool:
            cls = type(value)
            return cls.__module__.startswith("polars") and cls.__qualname__ == "DataFrame"

        def save(self, value, path: Path) -> None:
            value.write_parquet(path)

        def load(self, path: Path):
            import polars

            return polars.read_parquet(path)

    marshal.register(PolarsFrame(), first=True)  # first=True: ahead of the built-ins

Register it in code that every step runs (the imports cell, or a module they import): the step that loads
needs the backend as much as the step that saves.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from jupyter_ext.errors import MarshalError
from jupyter_ext.util import fsync_file

INDEX_FILE = "_index.json"

SAVE_HINT = (
    "Convert it to a list or another picklable type, or compute it in the step that uses it "
    "instead of passing it between steps."
)


class Unsupported(Exception):
    """Raised by :meth:`Backend.save` when it cannot represent this particular value.

    The registry then tries the next matching backend (in the end cloudpickle), so the user never sees it.
    """


class Backend:
    """How one kind of value is written to and read from a file.

    ``matches`` runs for every saved value, so it must be cheap and must not import heavy libraries: check
    ``type(value).__module__`` and ``__qualname__`` (the value's library is necessarily imported already).
    """

    name: str = ""
    suffix: str = ""

    def matches(self, value: Any) -> bool:
        raise NotImplementedError

    def save(self, value: Any, path: Path) -> None:
        """Write ``value`` to ``path`` (a temporary name ending in ``suffix``; the caller makes it atomic)."""
        raise NotImplementedError

    def load(self, path: Path) -> Any:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} {self.suffix}>"


def _type_name(value: Any) -> str:
    cls = type(value)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def _is_exactly(value: Any, package: str, qualname: str) -> bool:
    """``type(value)`` is ``package``'s class ``qualname`` (not a subclass, which may carry more state)."""
    cls = type(value)
    return cls.__qualname__ == qualname and cls.__module__.partition(".")[0] == package


def _has_base(value: Any, *bases: tuple[str, str]) -> bool:
    """Some class in ``type(value)``'s MRO is one of ``(module, qualname)``, checked without imports."""
    return any((cls.__module__, cls.__qualname__) in bases for cls in type(value).__mro__)


def _pickle_errors() -> tuple[type[Exception], ...]:
    import pickle

    # What pickle raises for an object it cannot handle (a lambda, a lock, a local class).
    return (pickle.PicklingError, AttributeError, TypeError)


# --- pandas -------------------------------------------------------------------------------------------

# pandas' nullable ("masked") dtypes, by name.
_MASKED_DTYPES = {"Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64"}
_MASKED_DTYPES |= {"Float32", "Float64", "boolean"}


def _is_object(dtype: Any) -> bool:
    # Not ``dtype.kind == "O"``: pandas' extension dtypes (str, category, ...) report that kind too.
    return str(dtype) == "object"


def _dtype_ok(dtype: Any, values: Any = None) -> bool:
    """Parquet (via pyarrow and pandas' metadata) reads this dtype back as exactly the same dtype.

    An allowlist, measured with pandas 3 / pyarrow 25 (see the tests): e.g. ``datetime64[s]`` comes back as
    ``[ms]``, categories that are not strings come back as plain values, ``string[python]`` as pyarrow strings.
    """
    import numpy as np
    import pandas as pd

    if isinstance(dtype, np.dtype):
        if dtype.kind in "biuf":
            return True
        if dtype.kind == "M":
            return np.datetime_data(dtype)[0] in ("ms", "us", "ns")
        if dtype.kind == "m":
            return np.datetime_data(dtype)[0] in ("s", "ms", "us", "ns")
        if dtype.kind == "O" and values is not None:
            # Only all-str or all-bytes columns; None would come back as NaN or the other way round.
            return pd.api.types.infer_dtype(values, skipna=False) in ("string", "bytes")
        return False
    if isinstance(dtype, pd.StringDtype):
        return dtype.storage == "pyarrow"
    if isinstance(dtype, pd.CategoricalDtype):
        cats = dtype.categories.dtype
        return isinstance(cats, pd.StringDtype) and cats.storage == "pyarrow"
    if isinstance(dtype, pd.DatetimeTZDtype):
        return dtype.unit != "s"
    if isinstance(dtype, pd.PeriodDtype):
        return True
    if isinstance(dtype, pd.IntervalDtype):
        return _dtype_ok(dtype.subtype)
    if isinstance(dtype, pd.ArrowDtype):
        import pyarrow as pa

        t = dtype.pyarrow_dtype
        # pa.string() comes back as pandas' StringDtype, decimals as objects, nested types not at all.
        return any(
            check(t)
            for check in (
                pa.types.is_integer,
                pa.types.is_floating,
                pa.types.is_boolean,
                pa.types.is_large_string,
                pa.types.is_binary,
                pa.types.is_date,
                pa.types.is_timestamp,
                pa.types.is_time,
                pa.types.is_duration,
            )
        )
    return getattr(dtype, "name", None) in _MASKED_DTYPES


def _labels_ok(index: Any) -> bool:
    """Row or column labels that Parquet keeps: string level names, representable values."""
    if not all(n is None or isinstance(n, str) for n in index.names):
        return False
    if index.nlevels > 1:
        return all(_dtype_ok(level.dtype) for level in index.levels)
    return _dtype_ok(index.dtype, index)


def _attrs_ok(attrs: dict) -> bool:
    # pandas stores ``attrs`` as JSON; anything JSON changes (tuples, non-str keys) would come back different.
    try:
        return json.loads(json.dumps(attrs)) == attrs
    except (TypeError, ValueError):
        return False


def _frame_ok(frame: Any) -> bool:
    columns = frame.columns
    if not columns.is_unique or not _labels_ok(columns):
        return False
    # Parquet column names are strings: other labels would come back as strings.
    levels = columns.levels if columns.nlevels > 1 else [columns]
    if not all(level.inferred_type == "string" for level in levels):
        return False
    if not _labels_ok(frame.index) or not _attrs_ok(frame.attrs):
        return False
    # Only object columns need a look at their values.
    return all(
        _dtype_ok(dtype, frame.iloc[:, i] if _is_object(dtype) else None)
        for i, dtype in enumerate(frame.dtypes)
    )


def _write_parquet(frame: Any, path: Path, meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    index = frame.index
    if index.nlevels == 1 and getattr(index, "freq", None) is not None:
        meta["freq"] = index.freqstr  # a DatetimeIndex/TimedeltaIndex frequency is not stored by pyarrow
    # Parquet reads strings back as pandas' str dtype; remember what held them as plain objects.
    meta["object_index"] = index.nlevels == 1 and _is_object(index.dtype)
    meta["object_labels"] = frame.columns.nlevels == 1 and _is_object(frame.columns.dtype)
    meta["object_columns"] = [i for i, dtype in enumerate(frame.dtypes) if _is_object(dtype)]
    try:
        table = pa.Table.from_pandas(frame, preserve_index=None)
        metadata = dict(table.schema.metadata or {})
        if frame.attrs:
            metadata[b"PANDAS_ATTRS"] = json.dumps(frame.attrs).encode()  # the key pandas.read_parquet reads
        metadata[b"cellpipe"] = json.dumps(meta).encode()
        pq.write_table(table.replace_schema_metadata(metadata), path)
    # pyarrow's "cannot convert this" errors subclass these; an OSError (disk full) is a real failure.
    except (TypeError, ValueError, NotImplementedError) as exc:
        raise Unsupported(str(exc)) from exc


def _read_parquet(path: Path) -> tuple[Any, dict]:
    import pandas as pd
    import pyarrow.parquet as pq

    # pandas.read_parquet rather than pyarrow's to_pandas: it restores attrs and maps strings like pandas does.
    frame = pd.read_parquet(path)
    meta = json.loads((pq.read_schema(path).metadata or {}).get(b"cellpipe", b"{}"))
    if meta.get("freq"):
        frame.index = type(frame.index)(frame.index, freq=meta["freq"])
    if meta.get("object_index"):
        frame.index = frame.index.astype(object)
    if meta.get("object_labels"):
        frame.columns = frame.columns.astype(object)
    for i in meta.get("object_columns", []):
        frame.isetitem(i, frame.iloc[:, i].astype(object))
    return frame, meta


class DataFrameBackend(Backend):
    name = "dataframe"
    suffix = ".parquet"

    def matches(self, value: Any) -> bool:
        return _is_exactly(value, "pandas", "DataFrame") and _frame_ok(value)

    def save(self, value: Any, path: Path) -> None:
        _write_parquet(value, path, {"kind": "dataframe"})

    def load(self, path: Path) -> Any:
        return _read_parquet(path)[0]


_SERIES_COLUMN = "__series__"


class SeriesBackend(Backend):
    """A Series as a one-column frame; its name (which may be None or a number) travels in the metadata."""

    name = "series"
    suffix = ".parquet"

    def matches(self, value: Any) -> bool:
        return (
            _is_exactly(value, "pandas", "Series")
            and (value.name is None or type(value.name) in (str, int, float, bool))
            and _labels_ok(value.index)
            and _attrs_ok(value.attrs)
            and _dtype_ok(value.dtype, value)
        )

    def save(self, value: Any, path: Path) -> None:
        column = value.name if isinstance(value.name, str) else _SERIES_COLUMN
        frame = value.to_frame(name=column)
        frame.attrs = dict(value.attrs)
        _write_parquet(frame, path, {"kind": "series", "name": value.name, "column": column})

    def load(self, path: Path) -> Any:
        frame, meta = _read_parquet(path)
        series = frame[meta["column"]]
        series.name = meta["name"]
        series.attrs = dict(frame.attrs)
        return series


# --- numpy, models, fallback --------------------------------------------------------------------------


class NdarrayBackend(Backend):
    name = "ndarray"
    suffix = ".npy"

    def matches(self, value: Any) -> bool:
        # Arrays holding Python objects would need pickle inside .npy; cloudpickle handles them instead.
        return _is_exactly(value, "numpy", "ndarray") and not value.dtype.hasobject

    def save(self, value: Any, path: Path) -> None:
        import numpy as np

        with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a path
            np.save(f, value, allow_pickle=False)

    def load(self, path: Path) -> Any:
        import numpy as np

        return np.load(path, allow_pickle=False)


class XGBoostBackend(Backend):
    """xgboost's own JSON format, stable across xgboost versions, unlike a pickle.

    One instance per model class: the backend name recorded in the index tells ``load`` which class to make.
    """

    suffix = ".xgb.json"

    def __init__(self, cls: str) -> None:
        self.cls = cls
        self.name = f"xgboost-{cls}"

    def matches(self, value: Any) -> bool:
        return _is_exactly(value, "xgboost", self.cls)

    def save(self, value: Any, path: Path) -> None:
        try:
            value.save_model(path)  # the ".json" ending selects the JSON format
        except Exception as exc:  # e.g. an unfitted model: joblib/cloudpickle can still keep it
            raise Unsupported(str(exc)) from exc

    def load(self, path: Path) -> Any:
        import xgboost

        model = getattr(xgboost, self.cls)()
        model.load_model(path)
        return model


XGBOOST_CLASSES = (
    "Booster",
    "XGBClassifier",
    "XGBRegressor",
    "XGBRanker",
    "XGBRFClassifier",
    "XGBRFRegressor",
)


class SklearnBackend(Backend):
    name = "sklearn"
    suffix = ".joblib"

    def matches(self, value: Any) -> bool:
        # An estimator cannot exist unless sklearn is imported; the check itself never imports it.
        return "sklearn.base" in sys.modules and _has_base(value, ("sklearn.base", "BaseEstimator"))

    def save(self, value: Any, path: Path) -> None:
        import joblib

        try:
            joblib.dump(value, path)
        except _pickle_errors() as exc:  # e.g. a FunctionTransformer(lambda ...): cloudpickle can do it
            raise Unsupported(str(exc)) from exc

    def load(self, path: Path) -> Any:
        import joblib

        return joblib.load(path)


class TorchBackend(Backend):
    name = "torch"
    suffix = ".pt"

    def matches(self, value: Any) -> bool:
        return "torch" in sys.modules and _has_base(
            value, ("torch", "Tensor"), ("torch.nn.modules.module", "Module")
        )

    def save(self, value: Any, path: Path) -> None:
        import torch

        try:
            torch.save(value, path)
        except _pickle_errors() as exc:
            raise Unsupported(str(exc)) from exc

    def load(self, path: Path) -> Any:
        import torch

        # A step without a GPU can still read what a GPU step wrote. weights_only=False: modules are whole
        # objects, and the file comes from this pipeline's own step, as trusted as any pickle here.
        device = None if torch.cuda.is_available() else "cpu"
        return torch.load(path, map_location=device, weights_only=False)


class CloudpickleBackend(Backend):
    """The last resort: anything pickle can do, plus lambdas and classes defined in the notebook."""

    name = "cloudpickle"
    suffix = ".pkl"

    def matches(self, value: Any) -> bool:
        return True

    def save(self, value: Any, path: Path) -> None:
        import pickle

        import cloudpickle

        with open(path, "wb") as f:
            cloudpickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)

    def load(self, path: Path) -> Any:
        import pickle

        with open(path, "rb") as f:
            return pickle.load(f)


# --- registry -----------------------------------------------------------------------------------------


def _installed(package: str) -> bool:
    from importlib.util import find_spec

    return find_spec(package) is not None  # looks for the package without importing it


def _builtin_backends() -> list[Backend]:
    found: list[Backend] = [DataFrameBackend(), SeriesBackend(), NdarrayBackend()]
    if _installed("xgboost"):
        # Before sklearn: xgboost's sklearn-style models are sklearn estimators too.
        found += [XGBoostBackend(cls) for cls in XGBOOST_CLASSES]
    found.append(SklearnBackend())
    if _installed("torch"):
        found.append(TorchBackend())
    return found


_FALLBACK: Backend = CloudpickleBackend()
_registry: list[Backend] = _builtin_backends()


def register(backend: Backend, *, first: bool = False) -> None:
    """Add ``backend``, after the others (``first=False``) or before them; always before cloudpickle.

    A backend with the same name is replaced, so re-running the registering cell is harmless.
    """
    if not backend.name or not backend.suffix.startswith("."):
        raise ValueError(f"backend {backend!r} needs a name and a suffix starting with '.'")
    if backend.name == _FALLBACK.name:
        raise ValueError(f"'{_FALLBACK.name}' is the built-in fallback and cannot be replaced")
    existing = [i for i, b in enumerate(_registry) if b.name == backend.name]
    if existing and not first:
        _registry[existing[0]] = backend
        return
    if existing:
        del _registry[existing[0]]
    if first:
        _registry.insert(0, backend)
    else:
        _registry.append(backend)


def unregister(name: str) -> Backend:
    """Remove the backend called ``name`` and return it (e.g. to register it again later)."""
    for i, backend in enumerate(_registry):
        if backend.name == name:
            return _registry.pop(i)
    raise KeyError(f"no registered backend named {name!r}")


def backends() -> list[Backend]:
    """The backends in the order they are tried, cloudpickle last."""
    return [*_registry, _FALLBACK]


def backend_for(value: Any) -> Backend:
    """The first backend that matches ``value``.

    ``save`` may still end up with a later one if this one raises :class:`Unsupported` for the value.
    """
    return next(b for b in backends() if b.matches(value))


def _backend_named(name: str) -> Backend | None:
    return next((b for b in backends() if b.name == name), None)


# --- files --------------------------------------------------------------------------------------------


def _temp_path(directory: Path, name: str, suffix: str) -> Path:
    # Same directory (os.replace must not cross file systems), hidden, and ending in the backend's suffix
    # because some libraries choose the format from the extension.
    return directory / f".{name}.{os.urandom(6).hex()}.tmp{suffix}"


def _write_value(name: str, value: Any, directory: Path, step: str | None, durable: bool) -> dict[str, Any]:
    """Write one value atomically and return its index record; the index itself is not touched."""
    if not name.isidentifier() or name == Path(INDEX_FILE).stem:
        raise MarshalError(
            f"cannot save variable {name!r}: not a valid variable name",
            step=step,
            hint="Use a Python identifier.",
        )
    type_name = _type_name(value)
    reason, hint = "no backend accepted it", SAVE_HINT
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for backend in backends():
            if not backend.matches(value):
                continue
            tmp = _temp_path(directory, name, backend.suffix)
            try:
                backend.save(value, tmp)
                if durable:
                    fsync_file(tmp)
                size = tmp.stat().st_size
                os.replace(tmp, directory / f"{name}{backend.suffix}")
            except Unsupported as exc:
                reason = str(exc)
                continue
            finally:
                tmp.unlink(missing_ok=True)  # a failed or skipped write leaves nothing behind
            return {
                "name": name,
                "backend": backend.name,
                "file": name + backend.suffix,
                "bytes": size,
                "type": type_name,
            }
    except MarshalError:
        raise
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        if isinstance(exc, OSError):
            hint = f"Check that {directory} is writable and has free space."
    raise MarshalError(f"cannot save variable {name!r} ({type_name}): {reason}", step=step, hint=hint)


def _read_index(directory: Path) -> dict[str, dict[str, Any]]:
    try:
        return json.loads((directory / INDEX_FILE).read_text())
    except FileNotFoundError:
        return {}


def _update_index(directory: Path, records: dict[str, dict[str, Any]], durable: bool) -> None:
    """Merge ``records`` into the index atomically, under a lock (parallel steps may share the directory)."""
    lock = os.open(directory, os.O_RDONLY) if os.name == "posix" else None
    try:
        if lock is not None:
            import fcntl

            fcntl.flock(lock, fcntl.LOCK_EX)  # the directory itself: no stray lock file; released by close
        index = _read_index(directory)
        # A value whose backend changed (e.g. .parquet -> .pkl) leaves its old file; remove it afterwards.
        stale = [index[n]["file"] for n, r in records.items() if n in index and index[n]["file"] != r["file"]]
        index.update(records)
        tmp = _temp_path(directory, Path(INDEX_FILE).stem, ".json")
        try:
            tmp.write_text(json.dumps(index, indent=1, sort_keys=True))
            if durable:
                fsync_file(tmp)
            os.replace(tmp, directory / INDEX_FILE)
        finally:
            tmp.unlink(missing_ok=True)
        for file in stale:
            (directory / file).unlink(missing_ok=True)
        if lock is not None and durable:
            os.fsync(lock)  # make the renames durable
    finally:
        if lock is not None:
            os.close(lock)


def _load_record(name: str, index: dict, directory: Path, step: str | None) -> Any:
    record = index.get(name)
    if record is None:
        where = (
            f"{directory}" if (directory / INDEX_FILE).exists() else f"{directory} (no {INDEX_FILE} there)"
        )
        raise MarshalError(
            f"cannot load variable {name!r}: it was not saved in {where}",
            step=step,
            hint="Check that an upstream step lists it as an output and finished successfully.",
        )
    path = directory / record["file"]
    backend = _backend_named(record["backend"])
    if backend is None:
        raise MarshalError(
            f"cannot load variable {name!r} ({record['type']}): it was saved with backend "
            f"'{record['backend']}', which is not available here",
            step=step,
            hint="Install the library it needs in this step's image, or register the custom backend in a "
            "cell that every step runs.",
        )
    if not path.exists():
        raise MarshalError(
            f"cannot load variable {name!r}: {path} is missing although {INDEX_FILE} lists it",
            step=step,
            hint="Re-run the step that produces it.",
        )
    try:
        return backend.load(path)
    except Exception as exc:
        hint = None
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            hint = (
                f"Install '{exc.name}' in this step's image, or import what defines the type in every step."
            )
        raise MarshalError(
            f"cannot load variable {name!r} ({record['type']}) from {path}: {type(exc).__name__}: {exc}",
            step=step,
            hint=hint,
        ) from exc


# --- API ----------------------------------------------------------------------------------------------


def save(name: str, value: Any, directory: Path, *, step: str | None = None) -> dict[str, Any]:
    """Write ``value`` as ``directory/<name><suffix>`` and record it in the index; return the record.

    The record is ``{"name", "backend", "file", "bytes", "type"}``. On failure nothing is left behind and
    a previous value of the same name stays intact.
    """
    return save_all({name: value}, directory, step=step)[name]


def save_all(
    values: dict[str, Any], directory: Path, *, step: str | None = None, durable: bool = True
) -> dict[str, dict[str, Any]]:
    """Save each value; the index is written once. If one fails, those saved before it are still indexed.

    ``durable=False`` skips the fsyncs: the files are complete for any reader, but not yet on disk; the
    caller makes them durable later (the local runner does, off the step's path, before trusting them)."""
    directory = Path(directory)
    records: dict[str, dict[str, Any]] = {}
    try:
        for name, value in values.items():
            records[name] = _write_value(name, value, directory, step, durable)
    finally:
        if records:
            _update_index(directory, records, durable)  # the index always describes the files on disk
    return records


def load(name: str, directory: Path, *, step: str | None = None) -> Any:
    """Read back the variable ``name`` saved in ``directory``."""
    directory = Path(directory)
    return _load_record(name, _read_index(directory), directory, step)


def load_all(
    names: list[str] | tuple[str, ...], directory: Path, *, step: str | None = None
) -> dict[str, Any]:
    """Read back several variables, reading the index once."""
    directory = Path(directory)
    index = _read_index(directory)
    return {name: _load_record(name, index, directory, step) for name in names}
