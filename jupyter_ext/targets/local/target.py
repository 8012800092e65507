"""The local target: this machine, a kernel per step (:mod:`.runner`), or papermill for a plain notebook."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from jupyter_ext.records.models import RunStatus
from jupyter_ext.targets.base import ExecutionContext


@dataclass
class LocalOptions:
    max_parallel: int = 0  # steps at once; 0: the number of cores
    step_timeout: float | None = None  # seconds a cell may run


class LocalTarget:
    name: ClassVar[str] = "local"
    label: ClassVar[str] = "This machine"
    options_type: ClassVar[type] = LocalOptions

    def availability(self, settings: Any) -> tuple[bool, str | None]:
        return True, None

    async def execute(self, context: ExecutionContext) -> RunStatus:
        from jupyter_ext.targets.local.runner import LocalRunner, RunOptions

        options: LocalOptions = context.options or LocalOptions()
        runner = LocalRunner(
            context.pipeline,
            context.record,
            workdir=context.workdir,
            run_dir=context.run_dir,
            cache_dir=context.data_dir / "cache",
            options=RunOptions(
                parameters=context.parameters,
                max_parallel=options.max_parallel,
                use_cache=context.use_cache,
                step_timeout=options.step_timeout,
            ),
            save=context.save,
            listener=context.listener,
        )
        return await runner.run()
