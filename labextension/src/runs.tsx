/**
 * The runs view: runs of the notebook in focus (or of all notebooks), live; each run's steps with
 * status, duration, the failing cell and its error; open an executed step notebook; MLflow/KFP links;
 * cancel; re-run from the same snapshot.
 */
import * as React from 'react';
import { Dialog, Notification, showDialog } from '@jupyterlab/apputils';
import {
  Button,
  caretDownIcon,
  caretRightIcon,
  notebookIcon,
  ReactWidget
} from '@jupyterlab/ui-components';
import { AfterRender, focusLost, ListChrome } from './components';
import {
  ApiError,
  CellpipeClient,
  FINAL_RUN_STATUSES,
  IRunRecord,
  IStepRecord,
  isCancelling,
  shortId
} from './api';
import { pipelineIcon } from './icons';
import { mlflowHint, runLinks } from './links';

export interface IRunsHost {
  client: CellpipeClient;
  /** Path of the notebook in focus, if any. */
  currentPath: () => string | null;
  openStepNotebook: (runId: string, step: string) => void;
  /** Open a notebook (server path) at a cell (1-based CLI numbering). */
  goToCell: (path: string, cell: number) => void;
  /** Where the browser reaches the KFP UI: KFP links recorded as a path are resolved against it. */
  kfpBase: () => string;
}

const POLL_ACTIVE_MS = 1500;
const POLL_IDLE_MS = 10000;

export class RunsView extends ReactWidget {
  constructor(private readonly host: IRunsHost) {
    super();
    this.id = 'cellpipe-runs';
    this.addClass('cp-Runs');
    this.title.label = 'Pipeline runs';
    this.title.icon = pipelineIcon;
    this.title.closable = true;
  }

  /** Show this run (expanded) and refresh at once. */
  reveal(runId?: string): void {
    if (runId) {
      this.expanded.add(runId);
      this.highlight = runId;
    }
    void this.refresh();
  }

  /** Which notebook's runs to show; null: all notebooks. */
  followPath(path: string | null): void {
    if (this.scope === 'notebook' && path !== this.path) {
      this.path = path;
      void this.refresh();
    }
  }

  async refresh(): Promise<void> {
    window.clearTimeout(this.timer);
    const path = this.scope === 'notebook' ? (this.path ?? this.host.currentPath()) : null;
    this.path = path;
    try {
      const data = await this.host.client.listRuns({ path: path ?? undefined }); // newest 50
      this.runs = data.runs;
      this.total = data.total ?? data.runs.length;
      this.error = null;
    } catch (reason) {
      this.error = ApiError.from(reason);
    }
    this.loaded = true;
    this.update();
    if (!this.isDisposed) {
      const active = this.runs.some(r => !FINAL_RUN_STATUSES.includes(r.status));
      this.timer = window.setTimeout(
        () => void this.refresh(),
        active ? POLL_ACTIVE_MS : POLL_IDLE_MS
      );
    }
  }

  dispose(): void {
    window.clearTimeout(this.timer);
    super.dispose();
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  protected render(): JSX.Element {
    const scopeLabel = this.path ? this.path : 'no notebook in focus';
    return (
      <ListChrome
        title="Pipeline runs"
        controls={
          <div className="cp-Runs-scope" role="radiogroup" aria-label="Which runs">
            <label title={scopeLabel}>
              <input
                type="radio"
                name="cp-runs-scope"
                checked={this.scope === 'notebook'}
                onChange={() => this.setScope('notebook')}
              />
              This notebook
            </label>
            <label>
              <input
                type="radio"
                name="cp-runs-scope"
                checked={this.scope === 'all'}
                onChange={() => this.setScope('all')}
              />
              All notebooks
            </label>
          </div>
        }
        onRefresh={() => void this.refresh()}
        error={this.error}
        errorTitle="Cannot list runs"
        empty={
          this.loaded && !this.error && this.runs.length === 0
            ? 'No runs yet. Click “Run as pipeline” in a notebook’s toolbar to start one.'
            : null
        }
      >
        <ol className="cp-RunList">{this.runs.map(run => this.renderRun(run))}</ol>
        <AfterRender then={() => this.keepFocus()} />
        {this.total > this.runs.length && (
          <p className="cp-Muted">
            Showing the newest {this.runs.length} of {this.total} runs.
          </p>
        )}
      </ListChrome>
    );
  }

  private renderRun(run: IRunRecord): JSX.Element {
    const open = this.expanded.has(run.id);
    const active = !FINAL_RUN_STATUSES.includes(run.status);
    const cancelling = isCancelling(run);
    const { mlflow, kfp } = runLinks(run, this.host.kfpBase());
    const kfpResolved = kfp !== null && kfp !== run.links?.kfp;
    return (
      <li
        key={run.id}
        className={`cp-Run cp-status-${run.status} ${this.highlight === run.id ? 'cp-mod-highlight' : ''}`}
        data-run={run.id}
      >
        <button
          className="cp-Run-summary"
          aria-expanded={open}
          onClick={() => {
            if (open) {
              this.expanded.delete(run.id);
            } else {
              this.expanded.add(run.id);
            }
            this.update();
          }}
        >
          {/* A grid of fixed places (base.css): what changes while a run goes on (status, the
              moving duration, "cancelling") never moves or re-wraps what is beside it. The caret
              is JupyterLab's, as its running-sessions and extension lists draw one. */}
          {open ? (
            <caretDownIcon.react tag="span" className="cp-Caret" />
          ) : (
            <caretRightIcon.react tag="span" className="cp-Caret" />
          )}
          {cancelling ? (
            <span
              className="cp-Badge cp-status-running cp-Run-cancelling"
              data-status={run.status}
              title={`Running; cancel requested by ${run.cancel_requested?.by ?? 'someone'}`}
            >
              cancelling
            </span>
          ) : (
            <StatusBadge status={run.status} />
          )}
          <span className="cp-Run-notebook" title={run.notebook}>
            {run.notebook.split('/').pop()}
          </span>
          <span className="cp-Run-duration">
            {formatDuration(elapsed(run.duration_s, run.created, active))}
          </span>
          <span className="cp-Run-meta">
            <StepDots steps={run.steps} />
            <span className="cp-Muted cp-Run-target">{run.target}</span>
            <span className="cp-Muted cp-Run-created">{formatTime(run.created)}</span>
            <span className="cp-Run-id">{shortId(run.id)}</span>
          </span>
        </button>
        {open && (
          <div className="cp-Run-detail">
            <div className="cp-Run-actions">
              {active && (
                <Button
                  small
                  disabled={cancelling}
                  title={cancelling ? 'Cancel requested; the run stops shortly' : undefined}
                  onClick={() => void this.act(run, 'cancel')}
                >
                  {cancelling ? 'Cancelling…' : 'Cancel'}
                </Button>
              )}
              {!active && (
                <Button
                  small
                  minimal
                  onClick={() => void this.act(run, 'rerun')}
                  title="Run again from the same snapshot and parameters"
                >
                  Re-run
                </Button>
              )}
              <Button small minimal className="cp-Run-logs" onClick={() => void this.showLogs(run)}>
                Logs
              </Button>
              {mlflow && (
                <a className="cp-Link" href={mlflow} target="_blank" rel="noopener noreferrer">
                  MLflow run ↗
                </a>
              )}
              {kfp && (
                <a
                  className="cp-Link"
                  href={kfp}
                  target="_blank"
                  rel="noopener noreferrer"
                  title={
                    kfpResolved
                      ? `${kfp}\nThe server recorded ${run.links?.kfp}: resolved against ${this.host.kfpBase()} (Settings › cellpipe › KFP UI base URL)`
                      : kfp
                  }
                >
                  KFP run ↗
                </a>
              )}
              {!mlflow && run.tracking?.mlflow_run_id && (
                <span className="cp-Muted cp-Run-mlflow" title={mlflowHint(run)}>
                  MLflow run {run.tracking.mlflow_run_id.slice(0, 8)}
                </span>
              )}
            </div>
            {runErrorText(run) && <p className="cp-Run-error">{runErrorText(run)}</p>}
            {Object.keys(run.parameters ?? {}).length > 0 && (
              <p className="cp-Muted cp-Run-params">
                {Object.entries(run.parameters)
                  .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
                  .join('  ')}
              </p>
            )}
            <table className="cp-Steps cp-RunSteps">
              <thead>
                <tr>
                  <th>Step</th>
                  <th>Status</th>
                  <th>Duration</th>
                  <th>Detail</th>
                  <th />
                </tr>
              </thead>
              <tbody>{run.steps.map(step => this.renderStep(run, step))}</tbody>
            </table>
          </div>
        )}
      </li>
    );
  }

  private renderStep(run: IRunRecord, step: IStepRecord): JSX.Element {
    const cell = step.error?.cell ?? null;
    const error = step.error
      ? [step.error.ename, step.error.evalue ?? step.error.message].filter(Boolean).join(': ')
      : '';
    const hasNotebook =
      step.notebook !== null && !['pending', 'not_run', 'skipped'].includes(step.status);
    return (
      <tr key={step.name} className={`cp-Step cp-status-${step.status}`} data-step={step.name}>
        <td title={step.name}>{step.name}</td>
        <td>
          <StatusBadge status={step.cached ? 'cached' : step.status} />
        </td>
        <td className="cp-Step-duration">
          {formatDuration(elapsed(step.duration_s, step.started, step.status === 'running'))}
        </td>
        <td className="cp-Step-error">
          {cell !== null && (
            <button className="cp-Link" onClick={() => this.host.goToCell(run.notebook, cell)}>
              cell {cell}
            </button>
          )}
          {cell !== null && error && ' '}
          {error}
        </td>
        <td className="cp-Step-open">
          {hasNotebook && (
            <Button
              small
              minimal
              onClick={() => this.host.openStepNotebook(run.id, step.name)}
              title="Open the executed notebook of this step"
            >
              <notebookIcon.react tag="span" className="cp-ButtonIcon" />
              <span className="cp-Label">Open notebook</span>
            </Button>
          )}
        </td>
      </tr>
    );
  }

  private async act(run: IRunRecord, action: 'cancel' | 'rerun'): Promise<void> {
    if (this.node.contains(document.activeElement)) {
      this.focusRun = run.id; // from the keyboard (or a click): see keepFocus
    }
    try {
      if (action === 'cancel') {
        // The answer waits a few seconds for the process running it (maybe not this server)
        const record = await this.host.client.cancelRun(run.id);
        const text =
          record.status === 'cancelled'
            ? `Run ${shortId(run.id)} cancelled`
            : FINAL_RUN_STATUSES.includes(record.status)
              ? `Run ${shortId(run.id)} had already ended (${record.status})`
              : `Cancelling run ${shortId(run.id)}…`;
        Notification.info(text, { autoClose: 4000 });
      } else {
        const record = await this.host.client.rerun(run.id);
        this.expanded.add(record.id);
        this.highlight = record.id;
        Notification.success(`Run ${shortId(record.id)} started (re-run of ${shortId(run.id)})`, {
          autoClose: 5000
        });
      }
    } catch (reason) {
      const error = ApiError.from(reason);
      Notification.error(
        `Could not ${action === 'cancel' ? 'cancel' : 're-run'} ${shortId(run.id)}: ${error.text}`,
        {
          autoClose: false
        }
      );
    }
    await this.refresh();
  }

  private async showLogs(run: IRunRecord): Promise<void> {
    let text: string;
    try {
      text = (await this.host.client.logs(run.id)).text || '(no log output)';
    } catch (reason) {
      text = ApiError.from(reason).text;
    }
    await showDialog({
      title: `Logs of run ${shortId(run.id)}`,
      body: ReactWidget.create(<pre className="cp-Logs">{text}</pre>),
      buttons: [Dialog.okButton({ label: 'Close' })]
    });
  }

  /**
   * A button that acted on a run can take the focus away with it: Cancel turns disabled while the run
   * stops and is gone once it has. The focus would fall back to the page, and a keyboard user would
   * start over from the top; it goes to the run's Logs button instead (always there, harmless).
   */
  private keepFocus(): void {
    if (!this.focusRun) {
      return;
    }
    const active = document.activeElement;
    if (!focusLost()) {
      const run = this.runs.find(r => r.id === this.focusRun);
      if (!this.node.contains(active) || !run || FINAL_RUN_STATUSES.includes(run.status)) {
        this.focusRun = null; // the user went elsewhere, or nothing more will change
      }
      return;
    }
    const selector = `.cp-Run[data-run="${CSS.escape(this.focusRun)}"] .cp-Run-logs`;
    this.node.querySelector<HTMLElement>(selector)?.focus();
    this.focusRun = null;
  }

  private setScope(scope: 'notebook' | 'all'): void {
    this.scope = scope;
    this.path = scope === 'notebook' ? this.host.currentPath() : null;
    void this.refresh();
  }

  private runs: IRunRecord[] = [];
  private total = 0;
  private error: ApiError | null = null;
  private loaded = false;
  private scope: 'notebook' | 'all' = 'notebook';
  private path: string | null = null;
  private expanded = new Set<string>();
  private highlight: string | null = null;
  private timer = 0;
  /** The run whose action button had the focus when it was used (see keepFocus). */
  private focusRun: string | null = null;
}

function runErrorText(run: IRunRecord): string {
  if (!run.error) {
    return '';
  }
  return typeof run.error === 'string' ? run.error : new ApiError(0, run.error).text;
}

function StatusBadge(props: { status: string }): JSX.Element {
  return (
    <span className={`cp-Badge cp-status-${props.status}`} data-status={props.status}>
      {props.status.replace('_', ' ')}
    </span>
  );
}

function StepDots(props: { steps: IStepRecord[] }): JSX.Element {
  return (
    <span className="cp-StepDots" aria-hidden="true">
      {props.steps.map(s => (
        <span
          key={s.name}
          className={`cp-StepDot cp-status-${s.cached ? 'cached' : s.status}`}
          title={`${s.name}: ${s.status}`}
        />
      ))}
    </span>
  );
}

/**
 * Seconds a run or step took: the recorded duration; while it runs, the time since it began (a step's
 * `started`, a run's `created`: its queue time counts, as in its final `duration_s`). The view polls
 * every 1.5 s then, so the figure moves: progress on long work.
 */
export function elapsed(
  duration: number | null | undefined,
  started: string | number | null | undefined,
  running: boolean
): number | null {
  if (duration !== null && duration !== undefined) {
    return duration;
  }
  if (!running || started === null || started === undefined) {
    return null;
  }
  const start = typeof started === 'number' ? started * 1000 : Date.parse(started);
  return isNaN(start) ? null : Math.max(0, (Date.now() - start) / 1000);
}

export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) {
    return '';
  }
  if (seconds < 60) {
    return `${seconds.toFixed(seconds < 10 ? 1 : 0)} s`;
  }
  const minutes = Math.floor(seconds / 60);
  return `${minutes} min ${Math.round(seconds % 60)} s`;
}

export function formatTime(value: string | number | null | undefined): string {
  if (value === null || value === undefined) {
    return '';
  }
  const date = typeof value === 'number' ? new Date(value * 1000) : new Date(value);
  if (isNaN(date.getTime())) {
    return String(value);
  }
  const today = new Date().toDateString() === date.toDateString();
  return today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : date.toLocaleString([], {
        year: 'numeric',
        month: 'short',
        day: 'numeric',
        hour: '2-digit',
        minute: '2-digit'
      });
}
