import { layoutPipeline, levelsOf } from '../src/dag';
import { parametersSchema, parameterValue } from '../src/params';

const step = (name: string, depends_on: string[] = []) => ({ name, depends_on });

describe('layout', () => {
  it('puts independent steps on one level and skips levels round the side', () => {
    const steps = [
      step('make'),
      step('stats', ['make']),
      step('hist', ['make']),
      step('report', ['stats', 'hist', 'make'])
    ];
    expect(Object.fromEntries(levelsOf(steps))).toEqual({ make: 0, stats: 1, hist: 1, report: 2 });
    const layout = layoutPipeline({
      steps: steps as never,
      edges: [
        { source: 'make', target: 'stats', variables: ['df'] },
        { source: 'make', target: 'hist', variables: ['df'] },
        { source: 'make', target: 'report', variables: ['n'] }
      ]
    });
    expect(layout.levels).toEqual([['make'], ['stats', 'hist'], ['report']]);
    const y = Object.fromEntries(layout.nodes.map(n => [n.name, n.y]));
    expect(y.stats).toBe(y.hist);
    expect(layout.edges.find(e => e.target === 'report')?.d).toMatch(/^M .* C /);
    for (const node of layout.nodes) {
      expect(node.x).toBeGreaterThan(0);
      expect(node.x).toBeLessThan(layout.width);
    }
  });

  it('survives a cycle (the server reports it)', () => {
    expect(levelsOf([step('a', ['b']), step('b', ['a'])]).size).toBe(2);
  });
});

describe('parameters', () => {
  const p = (name: string, type: string, value: unknown) =>
    ({ name, type, default: value, cell: 3 }) as never;

  it('types the form from the parameters cell', () => {
    const { schema, uiSchema } = parametersSchema([
      p('n', 'int', 10),
      p('rate', 'float', 0.5),
      p('on', 'bool', true),
      p('name', 'str', 'x'),
      p('ids', 'list', [1])
    ]);
    expect(schema.properties).toMatchObject({
      n: { type: 'integer', default: 10 },
      rate: { type: 'number', default: 0.5 },
      on: { type: 'boolean', default: true },
      name: { type: 'string', default: 'x' },
      ids: { type: 'string', default: '[1]' }
    });
    expect(uiSchema.ids).toMatchObject({ 'ui:widget': 'textarea' });
  });

  it('parses list/dict values and names the parameter when they are wrong', () => {
    expect(parameterValue(p('ids', 'list', []), '[1, 2]')).toEqual([1, 2]);
    expect(parameterValue(p('n', 'int', 1), 5)).toBe(5);
    expect(() => parameterValue(p('ids', 'list', []), '{"a": 1}')).toThrow(/ids/);
    expect(() => parameterValue(p('cfg', 'dict', {}), '[1')).toThrow(/not valid JSON/);
  });
});
