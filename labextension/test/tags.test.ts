import { applyRole, emptyRole, parseTags, roleToTags, validateRole } from '../src/tags';

describe('parseTags', () => {
  it('reads a step with its settings', () => {
    const role = parseTags([
      'step:train',
      'prev:load',
      'limit:nvidia.com/gpu:2',
      'limit:cpu:4',
      'limit:memory:8Gi',
      'image:reg/img:1',
      'cache:disabled'
    ]);
    expect(role).toEqual({
      kind: 'step',
      step: 'train',
      prev: ['load'],
      gpu: '2',
      cpu: '4',
      memory: '8Gi',
      image: 'reg/img:1',
      cache: 'disabled'
    });
  });

  it("reads Kale's legacy block: and pipeline-parameters", () => {
    expect(parseTags(['block:load_data']).step).toBe('load_data');
    expect(parseTags(['pipeline-parameters']).kind).toBe('parameters');
    expect(parseTags(['hide-input']).kind).toBe('none');
  });
});

describe('applyRole', () => {
  it('returns the same tags when the role is unchanged (no spurious notebook change)', () => {
    for (const tags of [
      ['block:load', 'hide-input'],
      ['pipeline-parameters'],
      ['injected-parameters'],
      ['step:a', 'prev:b', 'limit:nvidia.com/gpu:1', 'label:team:ml'],
      []
    ]) {
      expect(applyRole(tags, parseTags(tags))).toEqual(tags);
    }
  });

  it('keeps tags it does not own, in place, and replaces the role', () => {
    const tags = ['hide-input', 'imports', 'data:train.csv'];
    const next = applyRole(tags, { ...emptyRole('step'), step: 'train' });
    expect(next).toEqual(['hide-input', 'data:train.csv', 'step:train']);
  });

  it('drops step settings when the cell stops being a step', () => {
    const next = applyRole(['step:a', 'limit:cpu:2', 'secret:s:k:ENV'], emptyRole('skip'));
    expect(next).toEqual(['secret:s:k:ENV', 'skip']);
  });

  it('renames a step and adds settings', () => {
    const role = { ...parseTags(['step:a']), step: 'b', gpu: '1', prev: ['x'] };
    expect(applyRole(['step:a'], role)).toEqual(['step:b', 'prev:x', 'limit:nvidia.com/gpu:1']);
  });
});

describe('roleToTags and validateRole', () => {
  it('writes what the CLI reads', () => {
    expect(roleToTags(emptyRole('parameters'))).toEqual(['parameters']);
    expect(roleToTags(emptyRole('metrics'))).toEqual(['pipeline-metrics']);
    expect(roleToTags({ ...emptyRole('step'), step: 'x', cache: 'enabled' })).toEqual([
      'step:x',
      'cache:enabled'
    ]);
  });

  it('rejects what the CLI rejects', () => {
    const step = (changes: object) =>
      validateRole({ ...emptyRole('step'), step: 'ok', ...changes });
    expect(step({ step: 'Train' }).step).toMatch(/not a valid step name/);
    expect(step({ step: '1x' }).step).toMatch(/not a valid step name/);
    expect(step({ step: '' }).step).toMatch(/Name the step/);
    expect(step({ gpu: '1.5' }).gpu).toMatch(/whole number/);
    expect(step({ memory: '4 GB' }).memory).toMatch(/not a resource quantity/);
    expect(step({ cpu: '500m', memory: '4Gi', gpu: '1' })).toEqual({});
    expect(step({ prev: ['ok'] }).prev).toMatch(/after itself/);
    expect(
      validateRole({ ...emptyRole('step'), step: 'train' }, { stepsElsewhere: ['train'] }).step
    ).toMatch(/already starts elsewhere/);
  });
});
