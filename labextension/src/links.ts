/**
 * The runs view's links out of JupyterLab: a run's MLflow and KFP pages. Kept apart from the view (no
 * JupyterLab imports) so the rules are unit-tested.
 */
import type { IRunRecord } from './api';

/**
 * The run's web links (its MLflow run's page, its KFP run's page), each only when it is an absolute
 * http(s) URL: a record is data from the server's store, and a `javascript:` or `data:` URL there must
 * never become something a click runs. A KFP link recorded as a path (`/pipeline/#/runs/details/<id>`,
 * what the kfp client inside the cluster gives) is resolved against `kfpBase`, where the user's browser
 * reaches the KFP UI (see `kfpPageUrl`).
 */
export function runLinks(
  run: Pick<IRunRecord, 'links' | 'tracking'>,
  kfpBase: string | null = null
): {
  mlflow: string | null;
  kfp: string | null;
} {
  const links = run.links ?? {};
  return {
    mlflow: webUrl(links.mlflow) ?? webUrl(run.tracking?.mlflow_url),
    kfp: webUrl(links.kfp) ?? kfpPageUrl(links.kfp, kfpBase)
  };
}

/**
 * A link the KFP client wrote relative to the KFP UI (behind the Kubeflow central dashboard: a path
 * such as `/pipeline/#/runs/details/<id>`), as the browser reaches it from `base` (an http(s) URL: the
 * "KFP UI base URL" setting, else this page's origin, which the dashboard shares with the KFP UI).
 * Null unless the result is an http(s) URL on `base`'s origin: a scheme (`javascript:`), a
 * protocol-relative `//host` or a `/\host` never leaves through here.
 */
export function kfpPageUrl(
  value: string | null | undefined,
  base: string | null | undefined
): string | null {
  const origin = webUrl(base);
  if (!value || !origin) {
    return null;
  }
  try {
    const resolved = new URL(value, origin);
    const same = resolved.origin === new URL(origin).origin;
    return same && /^https?:$/.test(resolved.protocol) ? resolved.href : null;
  } catch {
    return null; // not a URL at all
  }
}

/** `value` when it is an absolute http(s) URL (any case, as browsers read it), else null. */
export function webUrl(value: string | null | undefined): string | null {
  return value && /^https?:\/\/[^/\s]/i.test(value) ? value : null;
}

/** What the server writes in place of its data directory (it keeps its paths to itself). */
export const DATA_DIR_MARK = '<cellpipe data>';

/** How to look at a run tracked in a store that has no web page of its own (sqlite, a file). */
export function mlflowHint(run: Pick<IRunRecord, 'tracking'>): string {
  const tracking = run.tracking ?? { status: 'off' };
  const uri = tracking.tracking_uri;
  const lines = [
    `MLflow run ${tracking.mlflow_run_id ?? ''}`,
    uri
      ? `Open with: mlflow ui --backend-store-uri ${uri}`
      : 'Open with: mlflow ui, pointed at the tracking store'
  ];
  if (uri?.includes(DATA_DIR_MARK)) {
    lines.push(`${DATA_DIR_MARK}: $CELLPIPE_HOME, else .cellpipe in the project's root folder`);
  }
  return lines.join('\n');
}
