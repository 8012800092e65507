import { scheduleNameFrom, scheduleNameProblem } from '../src/schedulename';

describe('schedule names', () => {
  it('are made valid from a notebook name', () => {
    expect(scheduleNameFrom('dir/Wine_Classifier.ipynb')).toBe('wine-classifier');
    expect(scheduleNameFrom('__x__.ipynb')).toBe('x');
    expect(scheduleNameFrom('___.ipynb')).toBe('notebook');
    expect(scheduleNameFrom(`${'a'.repeat(60)}.ipynb`)).toHaveLength(52);
  });

  it('are checked like the server checks them', () => {
    expect(scheduleNameProblem('nightly-wine')).toBeUndefined();
    expect(scheduleNameProblem('Nightly wine')).toMatch(/e\.g\. 'nightly-wine'/);
    expect(scheduleNameProblem('-x')).toBeDefined();
    expect(scheduleNameProblem('')).toBeDefined();
  });
});
