/**
 * A read-only JupyterLab drive over the runs API, so an executed step notebook opens as a real
 * notebook tab (outputs, errors, search) without copying it into the user's folder.
 * Paths: `cellpipe-runs:RUN_ID/STEP.ipynb`.
 */
import { Contents, ServerConnection } from '@jupyterlab/services';
import { ISignal, Signal } from '@lumino/signaling';
import { CellpipeClient } from './api';

export const DRIVE_NAME = 'cellpipe-runs';

/** The drive path of a run's executed step notebook. */
export function stepNotebookPath(runId: string, step: string): string {
  return `${DRIVE_NAME}:${runId}/${step}.ipynb`;
}

/** Whether a document path is on the runs drive (an executed step notebook). */
export function isStepNotebook(path: string): boolean {
  return path.startsWith(`${DRIVE_NAME}:`);
}

export class RunsDrive implements Contents.IDrive {
  readonly name = DRIVE_NAME;

  constructor(
    private readonly client: CellpipeClient,
    readonly serverSettings: ServerConnection.ISettings
  ) {}

  get fileChanged(): ISignal<this, Contents.IChangedArgs> {
    return this._fileChanged;
  }

  get isDisposed(): boolean {
    return this._disposed;
  }

  dispose(): void {
    this._disposed = true;
    Signal.clearData(this);
  }

  async get(localPath: string): Promise<Contents.IModel> {
    const match = /^([^/]+)\/([^/]+)\.ipynb$/.exec(localPath);
    if (!match) {
      // the root or a run folder: nothing to browse, the runs view lists them
      return {
        name: localPath.split('/').pop() ?? '',
        path: localPath,
        type: 'directory',
        writable: false,
        created: '',
        last_modified: '',
        mimetype: '',
        format: 'json',
        content: []
      };
    }
    const [, runId, step] = match;
    const content = await this.client.stepNotebook(runId, step);
    return {
      name: `${step}.ipynb`,
      path: localPath,
      type: 'notebook',
      writable: false,
      created: '',
      last_modified: '',
      mimetype: 'application/x-ipynb+json',
      format: 'json',
      content
    };
  }

  async getDownloadUrl(): Promise<string> {
    throw new Error(
      'executed step notebooks are read-only views: use "cellpipe runs show" to find the file'
    );
  }

  newUntitled(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  delete(): Promise<void> {
    return this.readOnly();
  }

  rename(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  save(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  copy(): Promise<Contents.IModel> {
    return this.readOnly();
  }

  createCheckpoint(): Promise<Contents.ICheckpointModel> {
    return this.readOnly();
  }

  async listCheckpoints(): Promise<Contents.ICheckpointModel[]> {
    return [];
  }

  restoreCheckpoint(): Promise<void> {
    return this.readOnly();
  }

  deleteCheckpoint(): Promise<void> {
    return this.readOnly();
  }

  private async readOnly(): Promise<never> {
    throw new Error('an executed step notebook is read-only: save a copy with File > Save As');
  }

  private _fileChanged = new Signal<this, Contents.IChangedArgs>(this);
  private _disposed = false;
}
