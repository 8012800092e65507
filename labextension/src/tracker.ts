/**
 * Per-notebook state: the cells' chips (derived locally at once) and the server's analysis of the
 * unsaved content (debounced while typing, prompt after a tag change). The chips view and the
 * pipeline panel both render from it.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { ICellModel } from '@jupyterlab/cells';
import { ISignal, Signal } from '@lumino/signaling';
import { analysisContent, ApiError, CellpipeClient, IAnalysis, IWarning } from './api';
import { ICellInput, ICellProblem, IChip, deriveChips, stepHue } from './chips';

/** Delay before analysing after an edit of the code (tag changes go at once). */
export const TYPING_DEBOUNCE_MS = 600;

export class NotebookState {
  constructor(
    readonly panel: NotebookPanel,
    private readonly client: CellpipeClient,
    private liveAnalysis: () => boolean
  ) {
    const model = panel.content.model;
    if (model) {
      model.cells.changed.connect(this.hookCells, this);
      this.hookCells();
    }
    panel.disposed.connect(() => {
      window.clearTimeout(this.timer);
      Signal.clearData(this);
    });
  }

  /** Emitted when chips or analysis changed. */
  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get path(): string {
    return this.panel.context.path;
  }

  get analysis(): IAnalysis | null {
    return this._analysis;
  }

  get error(): ApiError | null {
    return this._error;
  }

  get analysing(): boolean {
    return this.inFlight;
  }

  /** The cells changed since the last analysis while live analysis was off: the graph may be old. */
  get outdated(): boolean {
    return this._outdated;
  }

  /** Bumped every time a new analysis result (or error) is rendered. */
  get generation(): number {
    return this._generation;
  }

  get chips(): IChip[] {
    return this._chips;
  }

  /** The hue of a step, as its chips show it (the graph uses the same). */
  hue(step: string): number {
    return this._chips.find(c => c.kind === 'step' && c.step === step)?.hue ?? stepHue(step);
  }

  cells(): ICellInput[] {
    const model = this.panel.content.model;
    if (!model) {
      return [];
    }
    const cells: ICellInput[] = [];
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      const tags = cell.getMetadata('tags');
      cells.push({
        type: cell.type,
        tags: Array.isArray(tags) ? tags.map(String) : [],
        source: cell.sharedModel.getSource()
      });
    }
    return cells;
  }

  /** Problems from the server for cells: the analysis error and the warnings. */
  problems(): ICellProblem[] {
    const found: ICellProblem[] = [];
    if (this._error?.body.cell) {
      found.push({ cell: this._error.body.cell, message: this._error.text, severity: 'error' });
    }
    for (const warning of this._analysis?.warnings ?? []) {
      if (warning.cell) {
        found.push({ cell: warning.cell, message: warningText(warning), severity: 'warning' });
      }
    }
    return found;
  }

  /** Recompute the chips now; analyse after `delay` ms (0: now). */
  refresh(delay: number): void {
    this._chips = deriveChips(this.cells(), this.problems());
    if (!this.liveAnalysis()) {
      window.clearTimeout(this.timer);
      this.timer = 0;
      this._outdated = this._outdated || this._analysis !== null || this._error !== null;
      this._changed.emit();
      return;
    }
    this._changed.emit();
    // typing postpones the analysis (debounce), but never one already due at once for a tag change
    // (a tag change can come with a content change signal)
    if (this.timer && this.pendingDelay === 0) {
      return;
    }
    window.clearTimeout(this.timer);
    this.pendingDelay = delay;
    this.timer = window.setTimeout(() => {
      this.timer = 0;
      if (this.liveAnalysis()) {
        // the setting may have been turned off (or loaded as off) since: nothing is sent then
        void this.analyse();
      }
    }, delay);
  }

  /** Ask the server to analyse the unsaved content; stale answers are dropped. */
  async analyse(): Promise<void> {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = true;
    this._outdated = false; // the content is read now: later edits make it outdated again
    this._changed.emit();
    const model = this.panel.context.model;
    try {
      this._analysis = await this.client.analyse(this.path, analysisContent(model.toJSON()));
      this._error = null;
    } catch (reason) {
      this._error = ApiError.from(reason);
      if (this._error.status !== 400) {
        this._analysis = null; // not a notebook problem: do not show a stale picture as current
      }
    } finally {
      this.inFlight = false;
    }
    this._generation++;
    this._chips = deriveChips(this.cells(), this.problems());
    this._changed.emit();
    if (this.again) {
      this.again = false;
      void this.analyse();
    }
  }

  private hookCells(): void {
    const model = this.panel.content.model;
    if (!model) {
      return;
    }
    for (let i = 0; i < model.cells.length; i++) {
      const cell = model.cells.get(i);
      if (!this.hooked.has(cell)) {
        this.hooked.add(cell);
        cell.metadataChanged.connect(this.onMetadata, this);
        cell.contentChanged.connect(this.onContent, this);
      }
    }
    this.refresh(TYPING_DEBOUNCE_MS);
  }

  private onMetadata(): void {
    this.refresh(0);
  }

  private onContent(): void {
    this.refresh(TYPING_DEBOUNCE_MS);
  }

  private _changed = new Signal<this, void>(this);
  private _analysis: IAnalysis | null = null;
  private _error: ApiError | null = null;
  private _chips: IChip[] = [];
  private _generation = 0;
  private _outdated = false;
  private hooked = new WeakSet<ICellModel>();
  private timer = 0;
  private pendingDelay = 0;
  private inFlight = false;
  private again = false;
}

export function warningText(warning: IWarning): string {
  if (warning.text) {
    return warning.text;
  }
  const hint = warning.hint ? `. ${warning.hint}` : '';
  return `${warning.step ? `step '${warning.step}': ` : ''}${warning.message}${hint}`;
}
