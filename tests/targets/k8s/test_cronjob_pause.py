"""Pausing, resuming and reading a CronJob with the official client against kmock on loopback."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import kubernetes_validate
import pytest

from jupyter_ext.errors import TargetError
from jupyter_ext.targets.k8s.client import KubernetesTarget


async def test_suspend_and_resume_patch_the_cronjob(
    target: KubernetesTarget, kmock: Any, cronjob_factory: Callable, call: Callable
) -> None:
    await call(target.create_cronjob, cronjob_factory())
    paused = await call(target.suspend_cronjob, "nightly-train", True)
    assert paused["suspend"] is True and paused["schedule"] == "0 3 * * MON-FRI"
    (patch,) = list(kmock["patch"])
    assert patch.data == {"spec": {"suspend": True}}
    raw = await call(target.batch.read_namespaced_cron_job, "nightly-train", "team-a", _preload_content=False)
    stored = json.loads(raw.data)
    assert stored["spec"]["suspend"] is True
    kubernetes_validate.validate(stored, "1.30", strict=True)  # still a valid CronJob after the patch
    assert (await call(target.cronjob_status, "nightly-train"))["suspend"] is True
    resumed = await call(target.suspend_cronjob, "nightly-train", False)
    assert resumed["suspend"] is False


async def test_pausing_a_missing_cronjob_names_it(target: KubernetesTarget, call: Callable) -> None:
    with pytest.raises(TargetError, match="cronjob 'gone' not found in namespace 'team-a'"):
        await call(target.suspend_cronjob, "gone", True)
    with pytest.raises(TargetError, match="cronjob 'gone' not found"):
        await call(target.cronjob_status, "gone")
