"""Submit compiled packages to Kubeflow Pipelines, follow and cancel runs: a thin layer over ``kfp.Client``.

    client = connect("https://kubeflow.example.com/pipeline")              # see connect.py
    result = submit_run(client, "train.yaml", pipeline_name="train", experiment="train",
                        parameters={"epochs": 3}, run_id=run_id, snapshot_id=snap.id, store=url,
                        notebook="train.ipynb")
    print(result.url)
    status = wait_for_run(client, result.run_id, on_update=show)

Every submission uploads the package as a new version of the pipeline with the same name (the pipeline
itself on the first submission), gets or creates the experiment, and creates the run (or recurring run)
from exactly that version, with the parameters checked against the package's types. The experiment is
made before the upload and the upload before the run, so the one thing that can fail after something was
created is the run itself, and then the error lists what was created. Everything is sent through the
generated ``kfp_server_api`` services the client holds (``client.pipeline_uploads``, ``client.runs``, ...):
unlike the client's convenience methods they take a timeout and print no links.

KFP cannot label a run's pods at submit time; the snapshot and run ids reach the pods as compile-time labels
(``PackageSpec(snapshot_id=, run_id=)``) and as the ``cellpipe_snapshot_id``/``cellpipe_store`` run
parameters, and the run's description names them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.objects import validate_cron
from jupyter_ext.targets.kfp.compile import SNAPSHOT_PARAMETER, STORE_PARAMETER, check_store_url
from jupyter_ext.targets.kfp.connect import call_api, client_namespace, connect
from jupyter_ext.targets.kfp.follow import (
    FINAL_STATES,
    KfpRunStatus,
    Kubernetes,
    StepLog,
    TaskStatus,
    cancel_run,
    run_logs,
    run_status,
    run_steps,
    step_logs,
    wait_for_run,
)

if TYPE_CHECKING:
    from kfp.client import Client

__all__ = [
    "FINAL_STATES",
    "Kubernetes",
    "RecurringRun",
    "KfpRunStatus",
    "ScheduleResult",
    "StepLog",
    "SubmitResult",
    "TaskStatus",
    "cancel_run",
    "connect",
    "delete_recurring_run",
    "get_recurring_run",
    "kfp_cron",
    "list_recurring_runs",
    "run_logs",
    "run_status",
    "run_steps",
    "schedule_recurring",
    "set_recurring_run_enabled",
    "step_logs",
    "submit_run",
    "wait_for_run",
]

MAX_CONCURRENCY = 10  # KFP refuses recurring runs with max_concurrency outside 1..10
DEFAULT_EXPERIMENT = "Default"
# KFP's filter predicate for "display_name equals" (the client's own _FILTER_OPERATIONS['EQUALS'] is 1).
_EQUALS = 1
# Python types a package's parameter types accept; numbers travel as JSON numbers, so int fits a float.
_PARAMETER_TYPES: dict[str, tuple[type, ...]] = {
    "NUMBER_INTEGER": (int,),
    "NUMBER_DOUBLE": (int, float),
    "STRING": (str,),
    "BOOLEAN": (bool,),
    "LIST": (list,),
    "STRUCT": (dict,),
}


@dataclass(frozen=True)
class SubmitResult:
    pipeline_id: str
    version_id: str
    experiment_id: str
    run_id: str  # KFP's run id (a UUID), not cellpipe's
    url: str  # the run's page in the KFP UI
    pipeline_name: str = ""
    version_name: str = ""
    created_pipeline: bool = False  # True: this submission created the pipeline (first version)


@dataclass(frozen=True)
class ScheduleResult:
    pipeline_id: str
    version_id: str
    experiment_id: str
    recurring_run_id: str
    url: str
    cron: str  # as sent to KFP: 6 fields, seconds first
    pipeline_name: str = ""
    version_name: str = ""
    created_pipeline: bool = False
    status: str = ""  # as KFP reports it: ENABLED, or DISABLED for one created with enabled=False
    max_concurrency: int | None = None  # as KFP reports it (an int64, which its JSON sends as a string)


# -- the package --------------------------------------------------------------------------------------
@dataclass
class _Package:
    path: Path
    name: str
    parameters: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> inputDefinitions entry


def _read_package(package_path: str | Path) -> _Package:
    import yaml

    path = Path(package_path)
    if path.suffix not in (".yaml", ".yml") or not path.is_file():
        problem = "does not exist" if not path.exists() else "is not a .yaml package"
        raise TargetError(
            f"{path} {problem}",
            field="package",
            hint="compile one first: cellpipe compile NB -o pipeline.yaml",
        )
    try:
        with path.open(encoding="utf-8") as stream:
            spec = next(yaml.load_all(stream, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
        info = spec["pipelineInfo"]
        definitions = ((spec.get("root") or {}).get("inputDefinitions") or {}).get("parameters") or {}
    except (yaml.YAMLError, StopIteration, KeyError, TypeError, AttributeError):
        raise TargetError(f"{path} is not a KFP pipeline package", field="package") from None
    return _Package(path, str(info.get("displayName") or info["name"]), dict(definitions))


def typed_parameters(package: _Package, parameters: Mapping[str, Any] | None) -> dict[str, Any]:
    """``parameters`` checked against the package's parameter types (the run's ``runtime_config``)."""
    values: dict[str, Any] = {}
    for name, value in (parameters or {}).items():
        where = f"parameter '{name}'"
        if name not in package.parameters:
            known = ", ".join(sorted(package.parameters)) or "none"
            raise TargetError(
                f"the pipeline has no parameter '{name}'", field=where, hint=f"its parameters: {known}"
            )
        kind = package.parameters[name].get("parameterType", "STRING")
        accepted = _PARAMETER_TYPES.get(kind, (object,))
        if (isinstance(value, bool) and bool not in accepted) or not isinstance(value, accepted):
            raise TargetError(
                f"expects {kind.lower().replace('_', ' ')}, got {type(value).__name__} {value!r}",
                field=where,
                hint="pass a value of the parameter's type",
            )
        values[name] = float(value) if kind == "NUMBER_DOUBLE" else value
    return values


def _run_parameters(
    package: _Package,
    parameters: Mapping[str, Any] | None,
    snapshot_id: str | None,
    store: str | None,
) -> dict[str, Any]:
    values = typed_parameters(package, parameters)
    if snapshot_id or store:
        if not (snapshot_id and store):
            raise TargetError(
                "a snapshot id and its store go together",
                field="store" if snapshot_id else "snapshot_id",
                hint="pass both, or neither",
            )
        missing = [name for name in (SNAPSHOT_PARAMETER, STORE_PARAMETER) if name not in package.parameters]
        if missing:
            raise TargetError(
                f"{package.path} has no {missing[0]} parameter: it cannot run from a snapshot",
                field="package",
                hint="compile it again with this version of cellpipe",
            )
        values.update(typed_parameters(package, {SNAPSHOT_PARAMETER: snapshot_id, STORE_PARAMETER: store}))
        check_store_url(str(store))
    return values


def _describe(
    description: str | None, run_id: str | None, snapshot_id: str | None, store: str | None, notebook: Any
) -> str:
    parts = [description.strip()] if description and description.strip() else []
    if run_id:
        parts.append(f"cellpipe run {run_id}")
    if snapshot_id:
        parts.append(f"snapshot {snapshot_id}" + (f" in {store}" if store else ""))
    if notebook:
        parts.append(f"notebook {notebook}")
    return "; ".join(parts)


def _new_id() -> str:
    from jupyter_ext.records.models import new_run_id

    return new_run_id()


# -- pipelines, versions, experiments ---------------------------------------------------------------------
def _name_filter(name: str) -> str:
    return json.dumps({"predicates": [{"operation": _EQUALS, "key": "display_name", "stringValue": name}]})


@dataclass
class _Uploaded:
    pipeline_id: str
    version_id: str
    version_name: str
    created_pipeline: bool

    def created(self, pipeline_name: str) -> list[str]:
        made = [f"pipeline '{pipeline_name}' (id {self.pipeline_id})"] if self.created_pipeline else []
        return made + [f"pipeline version '{self.version_name}' (id {self.version_id})"]


def _find_pipeline(client: Client, name: str, namespace: str | None) -> str | None:
    found = call_api(
        f"looking up pipeline '{name}'",
        client.pipelines.pipeline_service_list_pipelines,
        namespace=namespace,
        filter=_name_filter(name),
        page_size=2,
    )
    pipelines = found.pipelines or []
    if len(pipelines) > 1:
        raise TargetError(
            f"KFP has {len(pipelines)} pipelines named '{name}'",
            field="pipeline_name",
            hint="pass another pipeline name, or delete the duplicates in the KFP UI",
        )
    return pipelines[0].pipeline_id if pipelines else None


def _upload_version(
    client: Client, package: _Package, pipeline_name: str, version_name: str, description: str
) -> _Uploaded:
    """Upload the package as a new version of ``pipeline_name``, creating the pipeline the first time."""
    namespace = client_namespace(client)
    pipeline_id = _find_pipeline(client, pipeline_name, namespace)
    if pipeline_id is None:
        pipeline = call_api(
            f"uploading pipeline '{pipeline_name}'",
            client.pipeline_uploads.upload_pipeline,
            str(package.path),
            name=pipeline_name,
            description=description or None,
            namespace=namespace,
        )
        # The upload made the pipeline and its first version (named like the pipeline): find the version.
        made = [f"pipeline '{pipeline_name}' (id {pipeline.pipeline_id})"]
        versions = call_api(
            f"listing the versions of pipeline '{pipeline_name}'",
            client.pipelines.pipeline_service_list_pipeline_versions,
            pipeline.pipeline_id,
            page_size=1,
            sort_by="created_at desc",
            created=made,
        ).pipeline_versions
        if not versions:
            raise TargetError(
                f"KFP created pipeline '{pipeline_name}' (id {pipeline.pipeline_id}) without a version",
                field="KFP",
                hint="delete the pipeline in the KFP UI and submit again",
            )
        version = versions[0]
        return _Uploaded(pipeline.pipeline_id, version.pipeline_version_id, version.display_name or "", True)
    version = call_api(
        f"uploading version '{version_name}' of pipeline '{pipeline_name}'",
        client.pipeline_uploads.upload_pipeline_version,
        str(package.path),
        name=version_name,
        pipelineid=pipeline_id,
        description=description or None,
    )
    return _Uploaded(pipeline_id, version.pipeline_version_id, version_name, False)


def _experiment_id(client: Client, name: str) -> str:
    """The id of the experiment ``name`` in the client's namespace, created if it does not exist."""
    import kfp_server_api

    namespace = client_namespace(client)
    found = call_api(
        f"looking up experiment '{name}'",
        client.experiments.experiment_service_list_experiments,
        namespace=namespace,
        filter=_name_filter(name),
        page_size=1,
    )
    if found.experiments:
        return found.experiments[0].experiment_id
    body = kfp_server_api.V2beta1Experiment(display_name=name, namespace=namespace)
    created = call_api(
        f"creating experiment '{name}'", client.experiments.experiment_service_create_experiment, body
    )
    return created.experiment_id


def _ui_url(client: Client, fragment: str) -> str:
    # The client keeps the UI's base URL ($KF_PIPELINES_UI_ENDPOINT, ui_host, else the API host) privately;
    # its own links are built the same way.
    return f"{client._get_url_prefix().rstrip('/')}/#/{fragment}"


@dataclass(frozen=True)
class _UploadedForRun:
    """What a run and a recurring run are both made from: the uploaded version, its experiment, the checked
    parameters and the description naming the run's lineage."""

    pipeline_name: str
    description: str
    experiment_id: str
    parameters: dict[str, Any]
    uploaded: _Uploaded

    def reference(self) -> Any:
        import kfp_server_api

        return kfp_server_api.V2beta1PipelineVersionReference(
            pipeline_id=self.uploaded.pipeline_id, pipeline_version_id=self.uploaded.version_id
        )

    def create(self, what: str, method: Callable[..., Any], body: Any) -> Any:
        """Create a run or recurring run of this version; an error lists what was created before it."""
        return call_api(f"creating {what}", method, body, created=self.uploaded.created(self.pipeline_name))

    def identity(self) -> dict[str, Any]:
        """The fields :class:`SubmitResult` and :class:`ScheduleResult` share."""
        return {
            "pipeline_id": self.uploaded.pipeline_id,
            "version_id": self.uploaded.version_id,
            "experiment_id": self.experiment_id,
            "pipeline_name": self.pipeline_name,
            "version_name": self.uploaded.version_name,
            "created_pipeline": self.uploaded.created_pipeline,
        }


def _upload_for_run(
    client: Client,
    package_path: str | Path,
    *,
    pipeline_name: str | None,
    experiment: str,
    parameters: Mapping[str, Any] | None,
    version_name: str,
    run_id: str | None,
    snapshot_id: str | None,
    store: str | None,
    notebook: str | Path | None,
    description: str | None,
) -> _UploadedForRun:
    """Check the package and parameters, get or create the experiment, then upload the version (in this
    order: see the module's docstring)."""
    package = _read_package(package_path)
    values = _run_parameters(package, parameters, snapshot_id, store)
    name = pipeline_name or package.name
    text = _describe(description, run_id, snapshot_id, store, notebook)
    experiment_id = _experiment_id(client, experiment)
    uploaded = _upload_version(client, package, name, version_name, text)
    return _UploadedForRun(name, text, experiment_id, values, uploaded)


# -- runs -----------------------------------------------------------------------------------------------
def submit_run(
    client: Client,
    package_path: str | Path,
    *,
    pipeline_name: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    parameters: Mapping[str, Any] | None = None,
    run_name: str | None = None,
    run_id: str | None = None,
    snapshot_id: str | None = None,
    store: str | None = None,
    notebook: str | Path | None = None,
    description: str | None = None,
    version_name: str | None = None,
    service_account: str | None = None,
) -> SubmitResult:
    """Upload ``package_path`` as a new version of ``pipeline_name`` and run it once in ``experiment``.

    ``pipeline_name`` defaults to the package's. ``parameters`` are checked against the package's types.
    ``snapshot_id``/``store`` become the run's ``cellpipe_snapshot_id``/``cellpipe_store`` parameters;
    they, cellpipe's ``run_id`` and the ``notebook`` are written into the run's and version's description.
    ``version_name`` defaults to the run id (generated when not given).
    """
    import kfp_server_api

    label = run_id or _new_id()
    version = _upload_for_run(
        client, package_path, pipeline_name=pipeline_name, experiment=experiment, parameters=parameters,
        version_name=version_name or label, run_id=run_id, snapshot_id=snapshot_id, store=store,
        notebook=notebook, description=description,
    )  # fmt: skip
    body = kfp_server_api.V2beta1Run(
        experiment_id=version.experiment_id,
        display_name=run_name or f"{version.pipeline_name} {label}",
        description=version.description or None,
        pipeline_version_reference=version.reference(),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=version.parameters),
        service_account=service_account,
    )
    run = version.create(
        f"a run of pipeline '{version.pipeline_name}'", client.runs.run_service_create_run, body
    )
    return SubmitResult(
        run_id=run.run_id, url=_ui_url(client, f"runs/details/{run.run_id}"), **version.identity()
    )


# -- recurring runs -------------------------------------------------------------------------------------
def kfp_cron(cron: str) -> str:
    """A 5-field cron (or a macro such as ``@daily``) as KFP's 6-field cron, whose first field is seconds.

    KFP's scheduler (robfig/cron) would read ``0 3 * * *`` as second 0, minute 3 of every hour.
    """
    fields = " ".join(str(cron).split()).split(" ")
    if len(fields) == 6 and not fields[0].startswith("@"):
        raise TargetError(
            f"invalid cron '{cron}': give the usual 5 fields (minute hour day-of-month month day-of-week)",
            field="schedule",
            hint="KFP's leading seconds field is added for you: '0 3 * * *' is sent as '0 0 3 * * *'",
        )
    checked = validate_cron(cron)
    return checked if checked.startswith("@") else f"0 {checked}"


def schedule_recurring(
    client: Client,
    package_path: str | Path,
    *,
    cron: str,
    name: str,
    pipeline_name: str | None = None,
    experiment: str = DEFAULT_EXPERIMENT,
    parameters: Mapping[str, Any] | None = None,
    max_concurrency: int = 1,
    enabled: bool = True,
    catchup: bool = False,
    snapshot_id: str | None = None,
    store: str | None = None,
    notebook: str | Path | None = None,
    description: str | None = None,
    version_name: str | None = None,
    service_account: str | None = None,
) -> ScheduleResult:
    """A KFP recurring run of a new version of ``pipeline_name`` on ``cron`` (5 fields, server time zone).

    It lives in KFP, so it keeps running after the notebook server that created it is culled. Every run
    uses the parameters given here, the snapshot included. ``max_concurrency`` (1-10): how many of its
    runs may be active at once. ``catchup``: after a pause, start the runs that were missed (default: only
    the latest).
    """
    import kfp_server_api

    schedule = kfp_cron(cron)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        max_concurrency = -1  # reported below with the range
    if not 1 <= max_concurrency <= MAX_CONCURRENCY:
        raise TargetError(
            f"max_concurrency must be a whole number from 1 to {MAX_CONCURRENCY}",
            field="max_concurrency",
            hint="KFP runs at most 10 runs of one recurring run at once",
        )
    if not str(name).strip():
        raise TargetError("the recurring run needs a name", field="name")
    version = _upload_for_run(
        client, package_path, pipeline_name=pipeline_name, experiment=experiment, parameters=parameters,
        version_name=version_name or f"{name}-{_new_id()}", run_id=None, snapshot_id=snapshot_id,
        store=store, notebook=notebook, description=description,
    )  # fmt: skip
    body = kfp_server_api.V2beta1RecurringRun(
        display_name=name,
        description=version.description or None,
        experiment_id=version.experiment_id,
        pipeline_version_reference=version.reference(),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(parameters=version.parameters),
        trigger=kfp_server_api.V2beta1Trigger(
            cron_schedule=kfp_server_api.V2beta1CronSchedule(cron=schedule)
        ),
        max_concurrency=max_concurrency,
        mode=kfp_server_api.RecurringRunMode.ENABLE if enabled else kfp_server_api.RecurringRunMode.DISABLE,
        no_catchup=not catchup,
        service_account=service_account,
    )
    created = version.create(
        f"recurring run '{name}'", client.recurring_runs.recurring_run_service_create_recurring_run, body
    )
    return ScheduleResult(
        recurring_run_id=created.recurring_run_id,
        url=_ui_url(client, f"recurringrun/details/{created.recurring_run_id}"),
        cron=schedule,
        status=str(created.status or ""),
        max_concurrency=int_or_none(created.max_concurrency),
        **version.identity(),
    )


@dataclass(frozen=True)
class RecurringRun:
    """A recurring run as KFP reports it (``status``: ENABLED or DISABLED)."""

    recurring_run_id: str
    name: str
    status: str
    cron: str
    url: str
    experiment_id: str = ""
    max_concurrency: int | None = None  # KFP sends this int64 as a JSON string


def _recurring(client: Client, item: Any) -> RecurringRun:
    trigger = item.trigger.cron_schedule if item.trigger and item.trigger.cron_schedule else None
    return RecurringRun(
        recurring_run_id=item.recurring_run_id,
        name=item.display_name or "",
        status=str(item.status or "STATUS_UNSPECIFIED"),
        cron=(trigger.cron or "") if trigger else "",
        url=_ui_url(client, f"recurringrun/details/{item.recurring_run_id}"),
        experiment_id=item.experiment_id or "",
        max_concurrency=int_or_none(item.max_concurrency),
    )


def get_recurring_run(client: Client, recurring_run_id: str) -> RecurringRun:
    found = call_api(
        f"reading recurring run {recurring_run_id}",
        client.recurring_runs.recurring_run_service_get_recurring_run,
        recurring_run_id,
    )
    return _recurring(client, found)


def list_recurring_runs(client: Client, *, name: str | None = None) -> list[RecurringRun]:
    """The recurring runs in the client's namespace (only those displayed as ``name`` if given)."""
    items: list[RecurringRun] = []
    token: str | None = None
    while True:
        page = call_api(
            "listing recurring runs",
            client.recurring_runs.recurring_run_service_list_recurring_runs,
            namespace=client_namespace(client),
            filter=_name_filter(name) if name else None,
            page_size=100,
            **({"page_token": token} if token else {}),
        )
        items += [_recurring(client, item) for item in page.recurring_runs or []]
        token = page.next_page_token
        if not token:
            # Filter again here: correct even where a server ignores the filter.
            return [item for item in items if name is None or item.name == name]


def set_recurring_run_enabled(client: Client, recurring_run_id: str, enabled: bool) -> None:
    """Resume (``enabled=True``) or pause a recurring run; paused, KFP starts none of its runs."""
    service = client.recurring_runs
    method = (
        service.recurring_run_service_enable_recurring_run
        if enabled
        else service.recurring_run_service_disable_recurring_run
    )
    call_api(
        f"{'enabling' if enabled else 'disabling'} recurring run {recurring_run_id}", method, recurring_run_id
    )


def delete_recurring_run(client: Client, recurring_run_id: str) -> None:
    """Delete a recurring run (the runs it started stay in KFP)."""
    call_api(
        f"deleting recurring run {recurring_run_id}",
        client.recurring_runs.recurring_run_service_delete_recurring_run,
        recurring_run_id,
    )


def int_or_none(value: Any) -> int | None:
    """An int64 field of a KFP answer (sent as a JSON string, e.g. ``"2"``), or None if absent."""
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
