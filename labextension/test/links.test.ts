import { kfpPageUrl, mlflowHint, runLinks, webUrl } from '../src/links';

describe('run links', () => {
  it('are absolute http(s) URLs only', () => {
    expect(webUrl('http://mlflow.example:5000/#/experiments/1/runs/ab')).toBe(
      'http://mlflow.example:5000/#/experiments/1/runs/ab'
    );
    expect(webUrl('HTTPS://kfp.example/#/runs/details/r-4')).toBe(
      'HTTPS://kfp.example/#/runs/details/r-4'
    );
    for (const unsafe of [
      'javascript:alert(1)',
      'JavaScript:alert(1)',
      ' javascript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      'vbscript:msgbox(1)',
      '//evil.example/x',
      '/pipeline/#/runs/details/r-4',
      'http:///x',
      'https:// x',
      '',
      null,
      undefined
    ]) {
      expect(webUrl(unsafe)).toBeNull();
    }
  });

  it('prefer the record links and fall back to the tracking URL for MLflow', () => {
    const tracking = { status: 'ok', mlflow_url: 'http://m/#/experiments/0/runs/x' };
    expect(runLinks({ links: {}, tracking })).toEqual({
      mlflow: 'http://m/#/experiments/0/runs/x',
      kfp: null
    });
    expect(
      runLinks({ links: { mlflow: 'data:text/html,x', kfp: 'javascript:alert(1)' }, tracking })
    ).toEqual({ mlflow: 'http://m/#/experiments/0/runs/x', kfp: null });
    expect(runLinks({ links: { kfp: 'http://k/#/runs/details/r-4' } })).toEqual({
      mlflow: null,
      kfp: 'http://k/#/runs/details/r-4'
    });
  });

  it('name the store a run went to when it has no web page', () => {
    const hint = mlflowHint({
      tracking: {
        status: 'ok',
        mlflow_run_id: '0123abcd',
        tracking_uri: 'sqlite:////home/me/cellpipe/mlflow.db'
      }
    });
    expect(hint).toBe(
      'MLflow run 0123abcd\nOpen with: mlflow ui --backend-store-uri sqlite:////home/me/cellpipe/mlflow.db'
    );
    expect(mlflowHint({ tracking: { status: 'ok', mlflow_run_id: 'x' } })).toMatch(/mlflow ui/);
    expect(
      mlflowHint({
        tracking: {
          status: 'ok',
          mlflow_run_id: 'x',
          tracking_uri: 'sqlite:///<cellpipe data>/mlflow.db'
        }
      }).split('\n')
    ).toEqual([
      'MLflow run x',
      'Open with: mlflow ui --backend-store-uri sqlite:///<cellpipe data>/mlflow.db',
      "<cellpipe data>: $CELLPIPE_HOME, else .cellpipe in the project's root folder"
    ]);
  });
});

describe('a KFP link recorded as a path', () => {
  const base = 'https://kubeflow.example.com';

  it('is resolved against the KFP UI base, or the page origin, as a browser would', () => {
    expect(kfpPageUrl('/pipeline/#/runs/details/r-4', base)).toBe(
      'https://kubeflow.example.com/pipeline/#/runs/details/r-4'
    );
    // a base with a path: an absolute path replaces it, a fragment-only link keeps it
    expect(kfpPageUrl('/pipeline/#/runs/details/r-4', 'http://10.0.0.5:8080/ignored/')).toBe(
      'http://10.0.0.5:8080/pipeline/#/runs/details/r-4'
    );
    expect(kfpPageUrl('#/runs/details/r-4', 'https://kfp.example/pipeline/')).toBe(
      'https://kfp.example/pipeline/#/runs/details/r-4'
    );
    expect(runLinks({ links: { kfp: '/pipeline/#/runs/details/r-4' } }, base)).toEqual({
      mlflow: null,
      kfp: 'https://kubeflow.example.com/pipeline/#/runs/details/r-4'
    });
    // an absolute link is kept as the server wrote it, whatever the base
    expect(runLinks({ links: { kfp: 'http://k/#/runs/details/r-4' } }, base).kfp).toBe(
      'http://k/#/runs/details/r-4'
    );
  });

  it('never leaves the base origin or becomes a script', () => {
    for (const unsafe of [
      'javascript:alert(1)',
      ' JavaScript:alert(1)',
      'data:text/html,<script>alert(1)</script>',
      '//evil.example/pipeline/#/runs/details/r-4',
      '/\\evil.example/x',
      '\\\\evil.example/x',
      'http:evil.example',
      '',
      null,
      undefined
    ]) {
      expect(kfpPageUrl(unsafe, base)).toBeNull();
      expect(runLinks({ links: { kfp: unsafe } }, base).kfp).toBeNull();
    }
  });

  it('needs an http(s) base', () => {
    for (const bad of ['', null, 'javascript:alert(1)', 'kubeflow.example.com', '/pipeline']) {
      expect(kfpPageUrl('/pipeline/#/runs/details/r-4', bad)).toBeNull();
    }
    expect(runLinks({ links: { kfp: '/pipeline/#/runs/details/r-4' } }).kfp).toBeNull();
  });
});
