/**
 * Schedule names as the server accepts them (they also name CronJobs and KFP recurring runs):
 * lowercase letters, digits and '-', at most 52 characters, starting and ending with a letter or digit.
 */
export const SCHEDULE_NAME = /^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$/;

/** A valid schedule name made from a notebook's name: `Wine_Classifier.ipynb` -> `wine-classifier`. */
export function scheduleNameFrom(notebook: string): string {
  const stem = (notebook.split('/').pop() ?? notebook).replace(/\.ipynb$/, '');
  const name = stem
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .slice(0, 52)
    .replace(/^-+|-+$/g, '');
  return name || 'notebook';
}

/** Why a schedule name is refused, or undefined. */
export function scheduleNameProblem(name: string): string | undefined {
  if (SCHEDULE_NAME.test(name)) {
    return undefined;
  }
  return `use lowercase letters, digits and '-', at most 52 characters, starting and ending with a letter or digit (e.g. '${scheduleNameFrom(name || 'nightly-report')}')`;
}
