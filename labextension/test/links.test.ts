import { mlflowHint, runLinks, webUrl } from '../src/links';

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
