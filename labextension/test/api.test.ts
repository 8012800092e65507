import {
  analysisContent,
  ApiError,
  CellpipeClient,
  errorBody,
  isCancelling,
  normalizeRun
} from '../src/api';

type Call = { route: string; init: RequestInit };

function client(status: number, body: unknown, calls: Call[] = []): CellpipeClient {
  return new CellpipeClient(async (route, init) => {
    calls.push({ route, init });
    const text = typeof body === 'string' ? body : JSON.stringify(body);
    return {
      ok: status >= 200 && status < 300,
      status,
      text: async () => text
    } as Response;
  });
}

describe('CellpipeClient', () => {
  it('sends JSON bodies and query strings to the contract routes', async () => {
    const calls: Call[] = [];
    await client(200, { pipeline: {}, levels: [] }, calls).analyse('a b.ipynb', '{"cells": []}');
    await client(200, { runs: [] }, calls).listRuns({ path: 'dir/x.ipynb', limit: 5 });
    await client(202, { id: 'r1', steps: [] }, calls).cancelRun('r1');
    expect(calls[0].route).toBe('analyse');
    expect(calls[0].init.method).toBe('POST');
    expect(JSON.parse(calls[0].init.body as string)).toEqual({
      path: 'a b.ipynb',
      content: '{"cells": []}'
    });
    expect(calls[1].route).toBe('runs?path=dir%2Fx.ipynb&limit=5');
    expect(calls[2]).toMatchObject({ route: 'runs/r1/cancel', init: { method: 'POST' } });
  });

  it('turns a located server error into an ApiError with one readable line', async () => {
    const error = {
      error: {
        message: 'code cell before the first step',
        cell: 3,
        hint: 'tag it step:NAME',
        notebook: 'x.ipynb'
      }
    };
    await expect(client(400, error).analyse('x.ipynb')).rejects.toMatchObject({
      status: 400,
      text: 'cell 3: code cell before the first step. Tag it step:NAME'
    });
  });

  it('explains 403 and 404 without the HTML page', async () => {
    const forbidden = await client(403, { message: 'Forbidden', reason: null })
      .config()
      .catch(e => e);
    expect(forbidden).toBeInstanceOf(ApiError);
    expect(forbidden.text).toMatch(/not allowed/);
    expect(errorBody(404, undefined, '<html>404</html>').message).toBe('HTTP 404');
    const wrapped = errorBody(
      403,
      { error: { message: "'_xsrf' argument missing", text: 'x' } },
      ''
    );
    // a refused XSRF check: the session is stale, not the permission missing
    expect(new ApiError(403, wrapped).text).toMatch(
      /^'_xsrf' argument missing\. Your login has expired or the token is wrong: reload the page/
    );
    expect(
      new ApiError(403, errorBody(403, { message: "'_xsrf' argument missing from POST." }, '')).text
    ).toMatch(/from POST\. Your login has expired/);
    // jupyter_server's own messages end with a full stop: no second one before the hint
    const denied = new ApiError(
      403,
      errorBody(403, { message: 'User is not authorized to execute on resource: kernels.' }, '')
    );
    expect(denied.text).toMatch(/^User is not authorized to execute on resource: kernels\. This/);
  });

  it('reports an unreachable server', async () => {
    const broken = new CellpipeClient(async () => {
      throw new TypeError('Failed to fetch');
    });
    await expect(broken.config()).rejects.toMatchObject({ status: 0 });
  });
});

describe('normalizeRun', () => {
  it('reads the contract shape and the older steps-by-name records', () => {
    const old = normalizeRun({
      id: 'r',
      steps: { a: { status: 'succeeded', duration: 1.5, cells: [4] } },
      duration: 3
    });
    expect(old.steps).toEqual([
      { name: 'a', status: 'succeeded', duration: 1.5, duration_s: 1.5, cells: [4], cell: 4 }
    ]);
    expect(old.duration_s).toBe(3);
    const current = normalizeRun({
      id: 'r',
      steps: [{ name: 'a', status: 'failed', duration_s: 2 }],
      parameters: { n: 1 }
    });
    expect(current.steps[0].duration_s).toBe(2);
    expect(current.parameters).toEqual({ n: 1 });
  });
});

describe('isCancelling', () => {
  it('is true while a cancel request waits for the run to end', () => {
    const run = normalizeRun({ id: 'r', status: 'running', steps: [] });
    expect(isCancelling(run)).toBe(false);
    const asked = { ...run, cancel_requested: { at: 1, by: 'alice (Jupyter server)' } };
    expect(isCancelling(asked)).toBe(true);
    expect(isCancelling({ ...asked, status: 'cancelled' })).toBe(false);
    expect(isCancelling({ ...asked, status: 'succeeded' })).toBe(false);
  });
});

describe('analysisContent', () => {
  it('keeps sources, tags and settings but drops outputs and attachments', () => {
    const notebook = {
      metadata: { kernelspec: { name: 'python3' } },
      nbformat: 4,
      cells: [
        {
          cell_type: 'code',
          source: 'x = 1',
          metadata: { tags: ['step:a'] },
          outputs: [{ output_type: 'display_data', data: { 'image/png': 'A'.repeat(1000) } }],
          execution_count: 3
        },
        {
          cell_type: 'markdown',
          source: '![x](attachment:x.png)',
          metadata: {},
          attachments: { 'x.png': {} }
        }
      ]
    };
    const sent = JSON.parse(analysisContent(notebook));
    expect(sent.metadata).toEqual(notebook.metadata);
    expect(sent.cells[0]).toEqual({
      cell_type: 'code',
      source: 'x = 1',
      metadata: { tags: ['step:a'] },
      outputs: [],
      execution_count: 3
    });
    expect(sent.cells[1]).toEqual({
      cell_type: 'markdown',
      source: '![x](attachment:x.png)',
      metadata: {}
    });
    expect(notebook.cells[0].outputs).toHaveLength(1); // the editor's model is not touched
  });
});
