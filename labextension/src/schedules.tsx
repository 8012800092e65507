/**
 * Schedules: a dialog to run the open notebook on a cron schedule (presets, a readable description
 * and the next fire times from the server, timezone, parameters, target) and a list with
 * pause/resume/edit/delete and each schedule's last runs.
 */
import * as React from 'react';
import { Dialog, Notification, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { Button } from '@jupyterlab/ui-components';
import { AfterRender, focusLost, ListChrome, StyledSelect } from './components';
import {
  ApiError,
  CellpipeClient,
  IParameter,
  IScheduleRecord,
  IScheduleRequest,
  shortId
} from './api';
import { PipelineActions } from './actions';
import { formatTime } from './runs';
import { scheduleNameFrom, scheduleNameProblem } from './schedulename';

export const CRON_PRESETS: { label: string; cron: string }[] = [
  { label: 'Every hour', cron: '0 * * * *' },
  { label: 'Every day at 06:00', cron: '0 6 * * *' },
  { label: 'Weekdays at 07:00', cron: '0 7 * * 1-5' },
  { label: 'Mondays at 08:00', cron: '0 8 * * 1' },
  { label: 'First of the month', cron: '0 6 1 * *' }
];

function timezones(): string[] {
  const intl = Intl as unknown as { supportedValuesOf?: (key: string) => string[] };
  const zones = intl.supportedValuesOf?.('timeZone') ?? [];
  return ['UTC', ...zones.filter(z => z !== 'UTC')];
}

interface IDraft {
  name: string;
  cron: string;
  timezone: string;
  target: string;
  catch_up: 'skip' | 'once';
  parameters: Record<string, unknown>;
}

function ScheduleForm(props: {
  client: CellpipeClient;
  draft: IDraft;
  targets: { name: string; label: string; available: boolean; reason: string | null }[];
  parameters: IParameter[];
  onChange: (draft: IDraft) => void;
}): JSX.Element {
  const [draft, setDraft] = React.useState(props.draft);
  const [preview, setPreview] = React.useState<{
    description: string;
    next: string[];
    error: string;
  }>({
    description: '',
    next: [],
    error: ''
  });
  const update = (changes: Partial<IDraft>): void => {
    const next = { ...draft, ...changes };
    setDraft(next);
    props.onChange(next);
  };
  React.useEffect(() => {
    let cancelled = false;
    const timer = window.setTimeout(() => {
      props.client.previewSchedule(draft.cron, draft.timezone).then(
        answer =>
          !cancelled &&
          setPreview({ description: answer.description, next: answer.next_fire_times, error: '' }),
        reason =>
          !cancelled &&
          setPreview({
            description: '',
            next: [],
            error: ApiError.from(reason).text
          })
      );
    }, 250);
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [draft.cron, draft.timezone]);
  return (
    <div className="cp-ScheduleForm">
      <label className="cp-RoleEditor-field">
        <span>Name</span>
        <input
          className="jp-mod-styled"
          name="name"
          value={draft.name}
          aria-invalid={!!scheduleNameProblem(draft.name)}
          onChange={e => update({ name: e.target.value })}
        />
        {scheduleNameProblem(draft.name) && (
          <span className="cp-RoleEditor-error">{scheduleNameProblem(draft.name)}</span>
        )}
      </label>
      <div className="cp-Presets" role="group" aria-label="Presets">
        {CRON_PRESETS.map(p => (
          <button
            key={p.cron}
            type="button"
            className={`cp-Preset ${draft.cron === p.cron ? 'cp-mod-selected' : ''}`}
            onClick={() => update({ cron: p.cron })}
          >
            {p.label}
          </button>
        ))}
      </div>
      <label className="cp-RoleEditor-field">
        <span>Cron expression</span>
        <input
          className="jp-mod-styled cp-Mono"
          name="cron"
          value={draft.cron}
          aria-invalid={!!preview.error}
          onChange={e => update({ cron: e.target.value })}
        />
      </label>
      <div className="cp-SchedulePreview" aria-live="polite">
        {preview.error ? (
          <span className="cp-RoleEditor-error">{preview.error}</span>
        ) : (
          <>
            <strong>{preview.description}</strong>
            {preview.next.length > 0 && (
              <span className="cp-Muted">
                Next:{' '}
                {preview.next
                  .slice(0, 3)
                  .map(t => formatTime(t))
                  .join(', ')}
              </span>
            )}
          </>
        )}
      </div>
      <div className="cp-RoleEditor-grid">
        <label className="cp-RoleEditor-field">
          <span>Timezone</span>
          <StyledSelect
            name="timezone"
            value={draft.timezone}
            onChange={e => update({ timezone: e.target.value })}
          >
            {timezones().map(z => (
              <option key={z}>{z}</option>
            ))}
          </StyledSelect>
        </label>
        <label className="cp-RoleEditor-field">
          <span>Run on</span>
          <StyledSelect
            name="target"
            value={draft.target}
            onChange={e => update({ target: e.target.value })}
          >
            {props.targets.map(t => (
              <option key={t.name} value={t.name} disabled={!t.available} title={t.reason ?? ''}>
                {t.label}
              </option>
            ))}
          </StyledSelect>
        </label>
        <label className="cp-RoleEditor-field">
          <span>Missed while the server was down</span>
          <StyledSelect
            name="catch_up"
            value={draft.catch_up}
            onChange={e => update({ catch_up: e.target.value as IDraft['catch_up'] })}
          >
            <option value="skip">skip them</option>
            <option value="once">run once</option>
          </StyledSelect>
        </label>
      </div>
      {props.parameters.length > 0 && (
        <fieldset className="cp-RoleEditor-prev">
          <legend>Parameters (from the pipeline panel; empty: the notebook’s default)</legend>
          {props.parameters.map(p => (
            <label key={p.name} className="cp-RoleEditor-field">
              <span>
                {p.name}{' '}
                <span className="cp-Muted">
                  ({p.type}, default {JSON.stringify(p.default)})
                </span>
              </span>
              <input
                className="jp-mod-styled"
                name={`param-${p.name}`}
                value={p.name in draft.parameters ? JSON.stringify(draft.parameters[p.name]) : ''}
                placeholder={JSON.stringify(p.default)}
                onChange={e => {
                  const parameters = { ...draft.parameters };
                  if (e.target.value.trim() === '') {
                    delete parameters[p.name];
                  } else {
                    try {
                      parameters[p.name] = JSON.parse(e.target.value);
                    } catch {
                      parameters[p.name] = e.target.value;
                    }
                  }
                  update({ parameters });
                }}
              />
            </label>
          ))}
        </fieldset>
      )}
    </div>
  );
}

class ScheduleBody extends ReactWidget implements Dialog.IBodyWidget<IDraft> {
  constructor(private props: Omit<React.ComponentProps<typeof ScheduleForm>, 'onChange'>) {
    super();
    this.draft = props.draft;
    this.addClass('cp-ScheduleBody');
  }

  getValue(): IDraft {
    return this.draft;
  }

  protected render(): JSX.Element {
    return <ScheduleForm {...this.props} onChange={d => (this.draft = d)} />;
  }

  private draft: IDraft;
}

async function scheduleDialog(
  client: CellpipeClient,
  actions: PipelineActions,
  title: string,
  draft: IDraft,
  parameters: IParameter[],
  save: (draft: IDraft) => Promise<IScheduleRecord>
): Promise<IScheduleRecord | null> {
  for (;;) {
    const result = await showDialog({
      title,
      body: new ScheduleBody({ client, draft, targets: actions.targets(), parameters }),
      buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Save schedule' })],
      focusNodeSelector: 'input[name="cron"]'
    });
    if (!result.button.accept || !result.value) {
      return null;
    }
    draft = result.value;
    try {
      return await save(draft);
    } catch (reason) {
      const error = ApiError.from(reason);
      Notification.error(`Schedule not saved: ${error.text}`, { autoClose: 8000 });
      if (error.status !== 400) {
        return null; // not something the form can fix
      }
    }
  }
}

/** The schedule dialog for a notebook; returns the created schedule, or null. */
export async function openScheduleDialog(
  client: CellpipeClient,
  actions: PipelineActions,
  path: string,
  parameters: IParameter[]
): Promise<IScheduleRecord | null> {
  const stem = (path.split('/').pop() ?? path).replace(/\.ipynb$/, '');
  const draft: IDraft = {
    name: scheduleNameFrom(path),
    cron: CRON_PRESETS[1].cron,
    timezone: 'UTC',
    target: actions.target(path),
    catch_up: 'skip',
    parameters: (() => {
      try {
        return actions.overrides(path, parameters);
      } catch {
        return {};
      }
    })()
  };
  const created = await scheduleDialog(client, actions, `Schedule ${stem}`, draft, parameters, d =>
    client.createSchedule({ path, ...d, enabled: true })
  );
  if (created) {
    Notification.success(`Schedule “${created.name}” created: ${created.description}`, {
      autoClose: 5000
    });
  }
  return created;
}

export class SchedulesView extends ReactWidget {
  constructor(
    private readonly client: CellpipeClient,
    private readonly actions: PipelineActions
  ) {
    super();
    this.addClass('cp-Runs');
    this.addClass('cp-Schedules');
  }

  async refresh(): Promise<void> {
    try {
      this.schedules = (await this.client.listSchedules()).schedules;
      this.error = null;
    } catch (reason) {
      this.error = ApiError.from(reason);
    }
    this.loaded = true;
    this.update();
  }

  protected onAfterAttach(): void {
    void this.refresh();
  }

  protected render(): JSX.Element {
    return (
      <ListChrome
        title="Pipeline schedules"
        onRefresh={() => void this.refresh()}
        error={this.error}
        errorTitle="Cannot list schedules"
        empty={
          this.loaded && !this.error && this.schedules.length === 0
            ? 'No schedules. Use “Schedule…” in the pipeline panel of a notebook.'
            : null
        }
      >
        {/* a wide table: in a narrow view it scrolls sideways on its own, under the view's header */}
        {this.schedules.length > 0 && (
          <div className="cp-TableScroll">
            <table className="cp-Steps cp-ScheduleTable">
              <thead>
                <tr>
                  <th>Name</th>
                  <th>Notebook</th>
                  <th>When</th>
                  <th>Next</th>
                  <th>Target</th>
                  <th>Last runs</th>
                  <th />
                </tr>
              </thead>
              <tbody>
                {this.schedules.map(s => (
                  <tr key={s.id} data-schedule={s.id} className={s.enabled ? '' : 'cp-mod-paused'}>
                    <td>{s.name}</td>
                    <td>{s.notebook}</td>
                    <td title={`${s.cron} (${s.timezone})`}>
                      {s.description /* it ends with the time zone: "At 07:00 (UTC)" */}
                      {!s.survives_server_cull && (
                        <span
                          className="cp-Muted"
                          title="Local schedules fire only while this Jupyter server runs"
                        >
                          {' '}
                          · while the server runs
                        </span>
                      )}
                    </td>
                    <td>
                      {s.enabled ? (
                        formatTime(s.next_fire_times[0])
                      ) : (
                        <span className="cp-Badge cp-status-cancelled">paused</span>
                      )}
                    </td>
                    <td>{s.target}</td>
                    <td>
                      <span className="cp-StepDots">
                        {s.recent_runs.map(r => (
                          <span
                            key={r.id}
                            className={`cp-StepDot cp-status-${r.status}`}
                            title={`${shortId(r.id)}: ${r.status}`}
                          />
                        ))}
                      </span>
                    </td>
                    <td className="cp-Row-actions">
                      <Button
                        small
                        minimal
                        onClick={() => void this.change(s, { enabled: !s.enabled })}
                      >
                        {s.enabled ? 'Pause' : 'Resume'}
                      </Button>
                      <Button small minimal onClick={() => void this.edit(s)}>
                        Edit
                      </Button>
                      <Button
                        small
                        minimal
                        className="cp-Danger"
                        onClick={() => void this.remove(s)}
                      >
                        Delete
                      </Button>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
        <AfterRender then={() => this.keepFocus()} />
      </ListChrome>
    );
  }

  private async change(
    schedule: IScheduleRecord,
    changes: Partial<IScheduleRequest>
  ): Promise<void> {
    try {
      await this.client.updateSchedule(schedule.id, changes);
    } catch (reason) {
      Notification.error(`Could not change “${schedule.name}”: ${ApiError.from(reason).text}`);
    }
    await this.refresh();
  }

  private async edit(schedule: IScheduleRecord): Promise<void> {
    const draft: IDraft = {
      name: schedule.name,
      cron: schedule.cron,
      timezone: schedule.timezone,
      target: schedule.target,
      catch_up: schedule.catch_up,
      parameters: schedule.parameters ?? {}
    };
    const parameters = Object.entries(schedule.parameters ?? {}).map(([name, value]) => ({
      name,
      type: 'str' as const,
      default: value,
      cell: null
    }));
    await scheduleDialog(
      this.client,
      this.actions,
      `Edit schedule ${schedule.name}`,
      draft,
      parameters,
      d =>
        this.client.updateSchedule(schedule.id, {
          cron: d.cron,
          timezone: d.timezone,
          target: d.target,
          catch_up: d.catch_up,
          parameters: d.parameters
        })
    );
    await this.refresh();
  }

  private async remove(schedule: IScheduleRecord): Promise<void> {
    const answer = await showDialog({
      title: `Delete schedule “${schedule.name}”?`,
      body: 'Runs it started stay in the runs list.',
      buttons: [Dialog.cancelButton(), Dialog.warnButton({ label: 'Delete' })]
    });
    if (!answer.button.accept) {
      return;
    }
    this.focusAfterDelete = this.schedules.findIndex(s => s.id === schedule.id);
    try {
      await this.client.deleteSchedule(schedule.id);
    } catch (reason) {
      this.focusAfterDelete = null; // the row stays, and the focus on it
      Notification.error(`Could not delete “${schedule.name}”: ${ApiError.from(reason).text}`);
    }
    await this.refresh();
  }

  /**
   * The deleted schedule's row took the focus (its Delete button, the dialog gave it back) with it: it goes
   * to the row that took its place (the one before it when it was the last), or to Refresh when none is left.
   */
  private keepFocus(): void {
    const index = this.focusAfterDelete;
    if (index === null) {
      return;
    }
    if (!focusLost()) {
      return;
    }
    this.focusAfterDelete = null;
    const rows = this.node.querySelectorAll<HTMLElement>('tr[data-schedule] .cp-Row-actions');
    const row = rows[Math.min(index, rows.length - 1)];
    (
      row?.querySelector<HTMLElement>('button') ??
      this.node.querySelector<HTMLElement>('button[aria-label="Refresh"]')
    )?.focus();
  }

  private schedules: IScheduleRecord[] = [];
  private error: ApiError | null = null;
  private loaded = false;
  /** Where the deleted schedule's row was (see keepFocus). */
  private focusAfterDelete: number | null = null;
}
