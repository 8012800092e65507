/**
 * What the toolbar button, the panel and the commands share: the server config (targets), the
 * parameter values and target chosen per notebook, and "Run as pipeline" itself.
 */
import { Notification, showErrorMessage } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { ISignal, Signal } from '@lumino/signaling';
import {
  ApiError,
  CellpipeClient,
  IConfig,
  IParameter,
  IRunRecord,
  ITargetInfo,
  shortId
} from './api';
import { parameterValue } from './params';

export interface ISettings {
  defaultTarget: string;
  autoSave: boolean;
  showChips: boolean;
  liveDag: boolean;
  /** Where the browser reaches the KFP UI, for run links recorded as a path; '': this page's origin. */
  kfpUiBase: string;
}

export const DEFAULT_SETTINGS: ISettings = {
  defaultTarget: 'local',
  autoSave: true,
  showChips: true,
  liveDag: true,
  kfpUiBase: ''
};

/** Used until (or if) the server answers GET config: the local target is always there. */
const LOCAL_ONLY: ITargetInfo[] = [
  { name: 'local', label: 'This machine (local)', available: true, reason: null }
];

export class PipelineActions {
  constructor(
    readonly client: CellpipeClient,
    private readonly openRuns: (runId?: string) => void
  ) {}

  settings: ISettings = { ...DEFAULT_SETTINGS };

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  /** A run started from this front end (the runs view refreshes at once). */
  get runStarted(): ISignal<this, IRunRecord> {
    return this._runStarted;
  }

  get config(): IConfig | null {
    return this._config;
  }

  get configError(): ApiError | null {
    return this._configError;
  }

  targets(): ITargetInfo[] {
    return this._config?.targets?.length ? this._config.targets : LOCAL_ONLY;
  }

  async loadConfig(): Promise<void> {
    try {
      this._config = await this.client.config();
      this._configError = null;
    } catch (reason) {
      this._configError = reason instanceof ApiError ? reason : null;
    }
    this._changed.emit();
  }

  /** The target for a notebook: the user's choice, else the setting, else the server's default. */
  target(path: string): string {
    const usable = this.targets().filter(t => t.available);
    const wanted = [
      this.chosenTarget.get(path),
      this.settings.defaultTarget,
      this._config?.default_target
    ];
    return wanted.find(name => usable.some(t => t.name === name)) ?? usable[0]?.name ?? 'local';
  }

  setTarget(path: string, target: string): void {
    this.chosenTarget.set(path, target);
    this._changed.emit();
  }

  /** Values the user typed in the parameters form (defaults are not stored). */
  parameterValues(path: string): Record<string, unknown> {
    return this.values.get(path) ?? {};
  }

  setParameterValues(path: string, values: Record<string, unknown>): void {
    this.values.set(path, values);
    this._changed.emit();
  }

  /** The overrides to send: the form's values that differ from the defaults, typed. */
  overrides(path: string, parameters: IParameter[]): Record<string, unknown> {
    const values = this.parameterValues(path);
    const result: Record<string, unknown> = {};
    for (const parameter of parameters) {
      if (parameter.name in values) {
        const value = parameterValue(parameter, values[parameter.name]);
        if (JSON.stringify(value) !== JSON.stringify(parameter.default)) {
          result[parameter.name] = value;
        }
      }
    }
    return result;
  }

  /**
   * "Run as pipeline": save (if the setting says so), start the run with the panel's parameters and
   * target, and tell the user where it is. Errors before the start are shown here, as a notification.
   */
  async run(panel: NotebookPanel, parameters: IParameter[] = []): Promise<IRunRecord | null> {
    const path = panel.context.path;
    const name = path.split('/').pop();
    try {
      const request = {
        path,
        parameters: this.overrides(path, parameters),
        target: this.target(path)
      };
      if (this.settings.autoSave && panel.context.model.dirty) {
        try {
          await panel.context.save();
        } catch {
          // not saved (read-only file or user): the unsaved content is sent and snapshotted instead
        }
      }
      const content = panel.context.model.dirty
        ? JSON.stringify(panel.context.model.toJSON())
        : undefined;
      const record = await this.client.startRun({ ...request, content });
      this._runStarted.emit(record);
      Notification.success(
        `Pipeline run ${shortId(record.id)} of ${name} started on ${record.target}`,
        {
          autoClose: 6000,
          actions: [{ label: 'Show run', callback: () => this.openRuns(record.id) }]
        }
      );
      return record;
    } catch (reason) {
      const error = ApiError.from(reason);
      // JupyterLab cuts notifications at 140 characters: the whole message is one click away
      Notification.error(`Could not run ${name} as a pipeline: ${error.text}`, {
        autoClose: false,
        actions: [
          {
            label: 'Details',
            callback: () => void showErrorMessage(`Could not run ${name} as a pipeline`, error.text)
          }
        ]
      });
      return null;
    }
  }

  private _changed = new Signal<this, void>(this);
  private _runStarted = new Signal<this, IRunRecord>(this);
  private _config: IConfig | null = null;
  private _configError: ApiError | null = null;
  private chosenTarget = new Map<string, string>();
  private values = new Map<string, Record<string, unknown>>();
}
