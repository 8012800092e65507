import { assignHues, deriveChips, stepHue, stepsAbove, tagProblem } from '../src/chips';

const code = (tags: string[], source = 'x = 1') => ({ type: 'code', tags, source });
const md = { type: 'markdown', tags: [], source: '# title' };

describe('deriveChips', () => {
  it('labels roles, steps and continuation cells like the CLI groups them', () => {
    const chips = deriveChips([
      md,
      code(['imports']),
      code([]),
      code(['parameters']),
      code(['step:load']),
      code([]),
      code(['skip']),
      code(['block:train']),
      code(['pipeline-metrics'])
    ]);
    expect(chips.map(c => [c.kind, c.label])).toEqual([
      ['none', ''],
      ['imports', 'imports'],
      ['continues-prelude', 'continues imports'],
      ['parameters', 'parameters'],
      ['step', 'load'],
      ['continues', 'continues load'],
      ['skip', 'skip'],
      ['step', 'train'],
      ['metrics', 'metrics']
    ]);
    expect(chips[5].step).toBe('load');
  });

  it('flags code before the first step, but not an empty cell', () => {
    const chips = deriveChips([code([], '# just a comment'), code([], 'y = 2'), code(['step:a'])]);
    expect(chips[0].kind).toBe('empty');
    expect(chips[0].problems).toEqual([]);
    expect(chips[1].kind).toBe('unassigned');
    expect(chips[1].problems[0].message).toMatch(/before the first step/);
  });

  it('flags malformed tags and attaches server problems to their cells', () => {
    const chips = deriveChips(
      [code(['step:Bad']), code(['step:ok']), md, code([])],
      [
        { cell: 4, message: "name 'z' is not defined", severity: 'warning' },
        { cell: 2, message: 'boom', severity: 'error' }
      ]
    );
    expect(chips[0].problems[0].message).toMatch(/not a valid step name/);
    expect(chips[0].label).toBe('step:Bad');
    expect(chips[1].problems.map(p => p.message)).toEqual(['boom']);
    expect(chips[3].problems.map(p => p.severity)).toEqual(['warning']);
  });

  it('knows the tag mistakes the CLI refuses', () => {
    expect(tagProblem(['imports', 'step:a'])).toMatch(/both/);
    expect(tagProblem(['imports', 'functions'])).toMatch(/both/);
    expect(tagProblem(['limit:cpu:lots'])).toMatch(/quantity/);
    expect(tagProblem(['cache:maybe'])).toMatch(/cache:enabled/);
    expect(
      tagProblem(['step:a', 'prev:b', 'hide-input', 'limit:nvidia.com/gpu:1'])
    ).toBeUndefined();
  });
});

describe('step colours', () => {
  const distance = (a: number, b: number) => Math.min(Math.abs(a - b), 360 - Math.abs(a - b));

  it('prefer a hue per name, the same every time', () => {
    expect(stepHue('train')).toBe(stepHue('train'));
    expect(stepHue('train')).toBeGreaterThanOrEqual(0);
    expect(stepHue('train')).toBeLessThan(360);
  });

  it('stand apart within a notebook, and earlier steps keep theirs when steps are added', () => {
    for (const steps of [
      ['load_data', 'split', 'train', 'evaluate'],
      ['area', 'perimeter', 'ratio'],
      ['clean', 'features', 'train_a', 'train_b', 'evaluate', 'report']
    ]) {
      const hues = [...assignHues(steps).values()];
      for (let i = 0; i < hues.length; i++) {
        for (let j = i + 1; j < hues.length; j++) {
          expect(distance(hues[i], hues[j])).toBeGreaterThanOrEqual(30); // 40 wanted; greedy packing may settle for less
        }
      }
      const more = assignHues([...steps, 'extra']);
      for (const name of steps) {
        expect(more.get(name)).toBe(assignHues(steps).get(name));
      }
    }
  });

  it('are on the chips of a step and of the cells that continue it', () => {
    const chips = deriveChips([code(['step:a']), code([]), code(['step:b'])]);
    expect(chips[0].hue).toBeDefined();
    expect(chips[1].hue).toBe(chips[0].hue);
    expect(chips[2].hue).not.toBe(chips[0].hue);
  });
});

describe('stepsAbove', () => {
  it('lists the steps tagged above a cell', () => {
    const cells = [code(['step:a']), code([]), code(['step:b']), code([])];
    expect(stepsAbove(cells, 4)).toEqual(['a', 'b']);
    expect(stepsAbove(cells, 1)).toEqual([]);
  });
});
