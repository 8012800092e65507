"""Listing, pausing, resuming and deleting KFP recurring runs: the real ``kfp.Client`` against the loopback server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.kfp.submit import (
    connect,
    delete_recurring_run,
    get_recurring_run,
    list_recurring_runs,
    schedule_recurring,
    set_recurring_run_enabled,
)

if TYPE_CHECKING:
    from conftest import FakeKFP  # tests/targets/kfp/conftest.py

API = "/apis/v2beta1"


@pytest.fixture(scope="module")
def package(kale_package: Callable[..., Path]) -> Path:
    return kale_package(snapshot_id="ab" * 32, store="s3://b/c")


def test_list_pause_resume_delete(kfp_server: FakeKFP, package: Path) -> None:
    client = connect(kfp_server.url, token="t")
    nightly = schedule_recurring(client, package, cron="0 3 * * *", name="nightly", version_name="n-1")
    schedule_recurring(client, package, cron="@hourly", name="hourly", version_name="h-1", enabled=False)
    kfp_server.take()

    listed = list_recurring_runs(client)
    assert [(r.name, r.status, r.cron) for r in listed] == [
        ("nightly", "ENABLED", "0 0 3 * * *"),
        ("hourly", "DISABLED", "@hourly"),
    ]
    (only,) = list_recurring_runs(client, name="nightly")
    assert only.recurring_run_id == nightly.recurring_run_id
    assert only.url == f"{kfp_server.url}/#/recurringrun/details/{nightly.recurring_run_id}"

    set_recurring_run_enabled(client, nightly.recurring_run_id, False)
    assert get_recurring_run(client, nightly.recurring_run_id).status == "DISABLED"
    set_recurring_run_enabled(client, nightly.recurring_run_id, True)
    assert get_recurring_run(client, nightly.recurring_run_id).status == "ENABLED"
    paths = [(r.method, r.path) for r in kfp_server.take()]
    assert ("POST", f"{API}/recurringruns/{nightly.recurring_run_id}:disable") in paths
    assert ("POST", f"{API}/recurringruns/{nightly.recurring_run_id}:enable") in paths

    delete_recurring_run(client, nightly.recurring_run_id)
    assert [r.name for r in list_recurring_runs(client)] == ["hourly"]
    with pytest.raises(
        TargetError, match=f"reading recurring run {nightly.recurring_run_id} failed: KFP answered 404"
    ):
        get_recurring_run(client, nightly.recurring_run_id)
