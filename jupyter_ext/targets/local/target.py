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
    stream_output: bool = False  # a plain notebook's cell output to this process's stdout (a pod's log)


class LocalTarget:
    name: ClassVar[str] = "local"
    label: ClassVar[str] = "This machine"
    options_type: ClassVar[type] = LocalOptions

    def availability(self, settings: Any) -> tuple[bool, str | None]:
        return True, None

    def snapshot_store(self, options: LocalOptions, default: str) -> str:
        return default

    def check(self, pipeline: Any, options: Any) -> None:
        """Everything runs here: tagged pipelines, and plain notebooks whole with papermill."""

    async def execute(self, context: ExecutionContext) -> RunStatus:
        from jupyter_ext.targets.local.runner import LocalRunner, RunOptions

        options: LocalOptions = context.options or LocalOptions()
        if context.pipeline.is_plain:
            return await _run_whole(context, options)
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
            shared_kernels=context.kernel_pool,
        )
        return await runner.run()


async def _run_whole(context: ExecutionContext, options: LocalOptions) -> RunStatus:
    """A plain notebook: one step, the whole notebook through papermill."""
    import time

    from jupyter_ext.records.models import StepStatus
    from jupyter_ext.targets.local.papermill import run_papermill
    from jupyter_ext.targets.local.runner import apply_result

    (step,) = context.record.steps
    step.status, step.started = StepStatus.RUNNING, time.time()
    context.save(context.record)
    context.emit("started", step.name)
    try:
        result = await run_papermill(
            context.pipeline, context.notebook, context.parameters, output=context.run_dir / "steps" /
            f"{step.name}.ipynb", cwd=context.workdir,
            log=None if options.stream_output else context.run_dir / "kernels.log", timeout=options.step_timeout,
        )  # fmt: skip
    except BaseException:
        step.status = StepStatus.CANCELLED
        raise
    apply_result(step, result)
    context.save(context.record)
    context.emit(result.status, step.name)
    return RunStatus.SUCCEEDED if step.status is StepStatus.SUCCEEDED else RunStatus.FAILED
