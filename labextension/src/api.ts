/**
 * The cellpipe server API (CONTRACT.md "HTTP API"), typed. The transport is injected: in JupyterLab it
 * is `ServerConnection.makeRequest` (token + XSRF); unit tests pass their own.
 */

/** A `fetch`-like function for a route under `{base_url}cellpipe/api/`. */
export type Transport = (route: string, init: RequestInit) => Promise<Response>;

export interface IErrorBody {
  message: string;
  notebook?: string | null;
  cell?: number | null;
  step?: string | null;
  field?: string | null;
  hint?: string | null;
  text?: string | null;
}

/** A failed call: the server's located error (cell/step/field/hint) and the HTTP status. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: IErrorBody
  ) {
    super(body.message);
    this.name = 'ApiError';
  }

  /** Any failure as an ApiError (a non-API failure keeps its message). */
  static from(reason: unknown): ApiError {
    return reason instanceof ApiError ? reason : new ApiError(0, { message: String(reason) });
  }

  /** One line for the user: where, what, what to do. */
  get text(): string {
    if (this.body.text) {
      return this.body.text;
    }
    const where = [
      this.body.cell ? `cell ${this.body.cell}` : '',
      this.body.step ? `step '${this.body.step}'` : '',
      this.body.field ?? ''
    ].filter(Boolean);
    const message = this.body.message;
    // a message that ends its sentence itself (jupyter_server's do) gets no second full stop
    const stop = /[.!?…]$/.test(message) ? ' ' : '. ';
    const hint = this.body.hint
      ? `${stop}${this.body.hint[0].toUpperCase()}${this.body.hint.slice(1)}`
      : '';
    return `${where.length ? where.join(': ') + ': ' : ''}${message}${hint}`;
  }
}

export interface IParameter {
  name: string;
  type: 'int' | 'float' | 'str' | 'bool' | 'list' | 'dict';
  default: unknown;
  cell: number | null;
}

export interface ISourceCell {
  index: number;
  source: string;
  tags: string[];
}

export interface IStep {
  name: string;
  cells: ISourceCell[];
  inputs: string[];
  outputs: string[];
  parameters: string[];
  metrics: string[];
  depends_on: string[];
  prev: string[];
  limits: Record<string, string>;
  image: string | null;
  cache: boolean | null;
}

export interface IEdge {
  source: string;
  target: string;
  variables: string[];
}

export interface IPipeline {
  name: string;
  notebook: string;
  steps: IStep[];
  edges: IEdge[];
  parameters: IParameter[];
  metrics: string[];
}

export interface IWarning {
  message: string;
  cell?: number | null;
  step?: string | null;
  field?: string | null;
  hint?: string | null;
  text?: string | null;
}

export interface IAnalysis {
  pipeline: IPipeline;
  levels: string[];
  warnings?: IWarning[];
}

export interface ITargetInfo {
  name: string;
  label: string;
  available: boolean;
  reason: string | null;
}

export interface IConfig {
  version: string;
  default_target: string;
  targets: ITargetInfo[];
  max_concurrent_runs?: number;
  max_body_bytes?: number;
}

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled' | 'crashed';
export type StepStatus =
  'pending' | 'running' | 'cached' | 'succeeded' | 'failed' | 'cancelled' | 'not_run' | 'crashed';

export const FINAL_RUN_STATUSES: RunStatus[] = ['succeeded', 'failed', 'cancelled', 'crashed'];

export interface IStepRecord {
  name: string;
  status: StepStatus;
  started: string | number | null;
  finished: string | number | null;
  duration_s: number | null;
  cached?: boolean;
  cell?: number | null;
  error?: { message?: string; cell?: number | null; ename?: string; evalue?: string } | null;
  notebook?: string | null;
}

export interface IRunRecord {
  id: string;
  notebook: string;
  target: string;
  status: RunStatus;
  source?: string;
  created: string | number | null;
  started?: string | number | null;
  finished?: string | number | null;
  duration_s?: number | null;
  parameters: Record<string, unknown>;
  snapshot_id?: string | null;
  schedule_id?: string | null;
  rerun_of?: string | null;
  error?: IErrorBody | string | null;
  steps: IStepRecord[];
  tracking?: {
    status: string;
    error?: string | null;
    mlflow_run_id?: string | null;
    mlflow_url?: string | null;
    /** The tracking store the run went to (credentials left out): what `mlflow ui` opens. */
    tracking_uri?: string | null;
  };
  links?: { mlflow?: string | null; kfp?: string | null };
  /** Someone asked to cancel it (here, another JupyterLab, `cellpipe runs cancel`): who and when. */
  cancel_requested?: { at: number; by: string } | null;
}

/** A cancel was asked for and the process running the run has not finished cancelling it yet. */
export function isCancelling(run: IRunRecord): boolean {
  return Boolean(run.cancel_requested) && !FINAL_RUN_STATUSES.includes(run.status);
}

export interface IScheduleRecord {
  id: string;
  name: string;
  notebook: string;
  cron: string;
  timezone: string;
  description: string;
  next_fire_times: string[];
  parameters: Record<string, unknown>;
  target: string;
  enabled: boolean;
  catch_up: 'skip' | 'once';
  missed: string[];
  recent_runs: { id: string; status: RunStatus; created: string | number }[];
  created: string | number;
  updated: string | number;
  survives_server_cull: boolean;
}

export interface IScheduleRequest {
  path: string;
  cron: string;
  timezone?: string;
  parameters?: Record<string, unknown>;
  target?: string;
  enabled?: boolean;
  catch_up?: 'skip' | 'once';
  name?: string;
}

export interface IRunRequest {
  path: string;
  content?: string;
  parameters?: Record<string, unknown>;
  target?: string;
  use_cache?: boolean;
  track?: boolean;
}

/**
 * The notebook as analysis needs it: sources, tags and settings, without outputs or attachments. An
 * image-heavy notebook would otherwise be sent whole on every keystroke (and past the server's body limit).
 */
export function analysisContent(notebook: unknown): string {
  const copy = { ...(notebook as Record<string, unknown>) };
  if (Array.isArray(copy.cells)) {
    copy.cells = copy.cells.map(cell => {
      const { outputs, attachments, ...rest } = cell as Record<string, unknown>;
      void attachments;
      return outputs === undefined ? rest : { ...rest, outputs: [] };
    });
  }
  return JSON.stringify(copy);
}

/** Typed calls to the cellpipe routes. */
export class CellpipeClient {
  constructor(private readonly transport: Transport) {}

  config(): Promise<IConfig> {
    return this.call('config', 'GET');
  }

  /** `content`: the unsaved notebook as JSON text (the server reads it instead of the file). */
  analyse(path: string, content?: string): Promise<IAnalysis> {
    return this.call('analyse', 'POST', { path, content });
  }

  async startRun(request: IRunRequest): Promise<IRunRecord> {
    return normalizeRun(await this.call('runs', 'POST', request));
  }

  async listRuns(
    query: { path?: string; status?: string; limit?: number; offset?: number } = {}
  ): Promise<{ runs: IRunRecord[]; total?: number }> {
    const data = await this.call<{ runs: unknown[]; total?: number }>(
      `runs${queryString(query)}`,
      'GET'
    );
    return { runs: (data.runs ?? []).map(normalizeRun), total: data.total };
  }

  async getRun(id: string): Promise<IRunRecord> {
    return normalizeRun(await this.call(`runs/${encodeURIComponent(id)}`, 'GET'));
  }

  async cancelRun(id: string): Promise<IRunRecord> {
    return normalizeRun(await this.call(`runs/${encodeURIComponent(id)}/cancel`, 'POST'));
  }

  async rerun(id: string): Promise<IRunRecord> {
    return normalizeRun(await this.call(`runs/${encodeURIComponent(id)}/rerun`, 'POST'));
  }

  logs(id: string): Promise<{ text: string }> {
    return this.call(`runs/${encodeURIComponent(id)}/logs`, 'GET');
  }

  /** The executed notebook of one step (nbformat JSON). */
  stepNotebook(id: string, step: string): Promise<Record<string, unknown>> {
    return this.call(
      `runs/${encodeURIComponent(id)}/steps/${encodeURIComponent(step)}/notebook`,
      'GET'
    );
  }

  listSchedules(path?: string): Promise<{ schedules: IScheduleRecord[] }> {
    return this.call(`schedules${queryString({ path })}`, 'GET');
  }

  createSchedule(request: IScheduleRequest): Promise<IScheduleRecord> {
    return this.call('schedules', 'POST', request);
  }

  previewSchedule(
    cron: string,
    timezone: string
  ): Promise<{ description: string; next_fire_times: string[] }> {
    return this.call('schedules/preview', 'POST', { cron, timezone });
  }

  updateSchedule(id: string, changes: Partial<IScheduleRequest>): Promise<IScheduleRecord> {
    return this.call(`schedules/${encodeURIComponent(id)}`, 'PATCH', changes);
  }

  deleteSchedule(id: string): Promise<void> {
    return this.call(`schedules/${encodeURIComponent(id)}`, 'DELETE');
  }

  private async call<T>(route: string, method: string, body?: unknown): Promise<T> {
    const init: RequestInit = { method };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
      init.headers = { 'Content-Type': 'application/json' };
    }
    let response: Response;
    try {
      response = await this.transport(route, init);
    } catch (reason) {
      throw new ApiError(0, {
        message: `cannot reach the Jupyter server (${String(reason)})`,
        hint: 'check that the server is still running'
      });
    }
    if (response.status === 204) {
      return undefined as T;
    }
    const text = await response.text();
    let data: unknown = undefined;
    try {
      data = text ? JSON.parse(text) : undefined;
    } catch {
      data = undefined;
    }
    if (!response.ok) {
      throw new ApiError(response.status, errorBody(response.status, data, text));
    }
    return data as T;
  }
}

/** The error body of a failed response: ours (`{error: {...}}`), jupyter_server's (`{message}`), or text. */
export function errorBody(status: number, data: unknown, text: string): IErrorBody {
  const record = (data ?? {}) as Record<string, unknown>;
  const hints: Record<number, string> = {
    401: 'your login has expired or the token is wrong: reload the page and log in again',
    403: 'this user is not allowed to do that on this server (ask its administrator for access)',
    404: 'the cellpipe server extension may be missing or older than this front end: run `jupyter server extension list`',
    413: 'the notebook is too big to send unsaved: save it first'
  };
  // a refused XSRF check is a stale session (expired login, other token), not a missing permission
  const hintFor = (message: string): string | null =>
    status === 403 && message.includes('_xsrf') ? hints[401] : (hints[status] ?? null);
  if (record.error && typeof record.error === 'object') {
    const body = record.error as IErrorBody;
    const hint = hintFor(body.message ?? '');
    if (body.hint || !hint) {
      return body;
    }
    return { ...body, hint, text: null }; // text is rebuilt with our hint
  }
  const message =
    typeof record.message === 'string' && record.message
      ? record.message
      : typeof record.reason === 'string' && record.reason
        ? record.reason
        : text && text.length < 200 && !text.trimStart().startsWith('<')
          ? text
          : `HTTP ${status}`;
  return { message, hint: hintFor(message) };
}

/** A run id short enough for a notification or a row: whole when it is short, else its first 12 characters. */
export function shortId(id: string): string {
  return id.length <= 24 ? id : id.slice(0, 12);
}

/**
 * A run record in the contract's shape. Records written before the run service (steps as an object
 * keyed by name, `duration` instead of `duration_s`) are read too, so older runs still show.
 */
export function normalizeRun(raw: unknown): IRunRecord {
  const record = { ...(raw as Record<string, unknown>) };
  const steps = record.steps;
  const list: Record<string, unknown>[] = Array.isArray(steps)
    ? steps
    : Object.entries((steps ?? {}) as Record<string, Record<string, unknown>>).map(
        ([name, info]) => ({
          name,
          ...info
        })
      );
  record.steps = list.map(step => {
    const s = { ...step };
    if (s.duration_s === undefined) {
      s.duration_s = typeof s.duration === 'number' ? s.duration : null;
    }
    if (s.cell === undefined && Array.isArray(s.cells)) {
      s.cell = (s.cells as number[])[0] ?? null;
    }
    return s;
  });
  if (record.duration_s === undefined) {
    record.duration_s = typeof record.duration === 'number' ? record.duration : null;
  }
  record.parameters = record.parameters ?? {};
  return record as unknown as IRunRecord;
}

function queryString(query: Record<string, string | number | undefined>): string {
  const parts = Object.entries(query)
    .filter(([, value]) => value !== undefined && value !== '')
    .map(([key, value]) => `${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  return parts.length ? `?${parts.join('&')}` : '';
}
