/**
 * Which chip each cell shows: derived from the tags alone (instant, as the user types) the same way the
 * CLI groups cells (jupyter_ext/pipeline/build.py), then marked with what the server's analysis
 * reported for the cell (errors and warnings). Pure: unit-tested without JupyterLab.
 */
import { QUANTITY, STEP_NAME, SpecialRole, specialRole, stepOfTag } from './tags';

export type ChipKind =
  'step' | 'continues' | SpecialRole | 'continues-prelude' | 'unassigned' | 'empty' | 'none';

export interface ICellInput {
  type: string; // 'code' | 'markdown' | 'raw'
  tags: readonly string[];
  source: string;
}

/** A problem located at a cell (1-based index, markdown cells counted: the CLI's numbering). */
export interface ICellProblem {
  cell: number;
  message: string;
  severity: 'error' | 'warning';
}

export interface IChip {
  kind: ChipKind;
  /** text on the chip */
  label: string;
  /** the step the chip belongs to, if any */
  step?: string;
  /** the step's hue (see assignHues) */
  hue?: number;
  /** problems on this cell (tooltip), most severe first */
  problems: ICellProblem[];
}

/** The preferred hue (0-359) of a step name: the same name, the same hue, in every notebook. */
export function stepHue(name: string): number {
  let hash = 0x811c9dc5; // FNV-1a over the name...
  for (let i = 0; i < name.length; i++) {
    hash ^= name.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  hash ^= hash >>> 16; // ...then murmur3's finaliser, so similar short names land far apart
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return (hash >>> 0) % 360;
}

/** Hues closer than this look like one colour. */
const MIN_HUE_DISTANCE = 40;

/**
 * The hue of each step of a notebook: its preferred hue unless an earlier step already looks like it,
 * then turned by the golden angle until it stands apart. A step keeps its colour when steps are
 * added after it, and the chips and the graph agree.
 */
export function assignHues(steps: readonly string[]): Map<string, number> {
  const hues = new Map<string, number>();
  for (const name of steps) {
    if (hues.has(name)) {
      continue;
    }
    const taken = [...hues.values()];
    const gap = (h: number) =>
      Math.min(360, ...taken.map(o => Math.min(Math.abs(h - o), 360 - Math.abs(h - o))));
    // the preferred hue, else the first golden-angle turn from it that stands apart, else the best
    const candidates = [...Array(36).keys()].map(k => (stepHue(name) + k * 137.5) % 360);
    const hue =
      candidates.find(h => gap(h) >= MIN_HUE_DISTANCE) ??
      candidates.reduce((best, h) => (gap(h) > gap(best) ? h : best));
    hues.set(name, Math.round(hue));
  }
  return hues;
}

/** What is wrong with a cell's tags, as the CLI would say it, or undefined. */
export function tagProblem(tags: readonly string[]): string | undefined {
  let role: SpecialRole | undefined;
  let step: string | undefined;
  for (const raw of tags) {
    const tag = raw.trim();
    const special = specialRole(tag);
    if (special) {
      if (role && role !== special) {
        return `cell is tagged both '${role}' and '${special}'`;
      }
      role = special;
      continue;
    }
    const [prefix, ...rest] = tag.split(':');
    const value = rest.join(':');
    if (['step', 'block', 'prev'].includes(prefix)) {
      if (!value) {
        return `malformed tag '${tag}': no step name`;
      }
      if (!STEP_NAME.test(value)) {
        return `malformed tag '${tag}': '${value}' is not a valid step name`;
      }
      if (prefix !== 'prev') {
        step = step ?? value;
      }
    } else if (prefix === 'limit' && rest.length > 0) {
      const quantity = rest[rest.length - 1];
      const resource = rest.slice(0, -1).join(':');
      if (!resource || !quantity) {
        return `malformed tag '${tag}': expected limit:RESOURCE:VALUE`;
      }
      if (!QUANTITY.test(quantity)) {
        return `malformed tag '${tag}': '${quantity}' is not a resource quantity`;
      }
    } else if (prefix === 'cache' && rest.length > 0 && !['enabled', 'disabled'].includes(value)) {
      return `malformed tag '${tag}': expected cache:enabled or cache:disabled`;
    }
  }
  if (role && step) {
    return `cell is tagged both '${role}' and 'step:${step}'`;
  }
  return undefined;
}

const ROLE_LABELS: Record<SpecialRole, string> = {
  imports: 'imports',
  functions: 'functions',
  parameters: 'parameters',
  metrics: 'metrics',
  skip: 'skip'
};

/** Whether a cell has code once comments and blank lines are removed. */
function hasCode(source: string): boolean {
  return source.split('\n').some(line => line.trim() !== '' && !line.trim().startsWith('#'));
}

/**
 * One chip per cell (markdown and raw cells get kind "none"), walking the cells like the CLI:
 * a step tag starts a step, untagged cells continue it; imports/functions continue onto untagged
 * cells; untagged code before the first step is flagged.
 */
export function deriveChips(
  cells: readonly ICellInput[],
  problems: readonly ICellProblem[] = []
): IChip[] {
  const byCell = new Map<number, ICellProblem[]>();
  for (const problem of problems) {
    const list = byCell.get(problem.cell) ?? [];
    list.push(problem);
    byCell.set(problem.cell, list);
  }
  let currentStep: string | undefined;
  let prelude: 'imports' | 'functions' | undefined;
  const chips: IChip[] = cells.map((cell, i) => {
    const index = i + 1;
    const found = [...(byCell.get(index) ?? [])];
    if (cell.type !== 'code') {
      return { kind: 'none', label: '', problems: found };
    }
    const problem = tagProblem(cell.tags);
    if (problem && !found.some(p => p.message.includes(problem))) {
      found.unshift({ cell: index, message: problem, severity: 'error' });
    }
    found.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === 'error' ? -1 : 1));
    const role = cell.tags.map(specialRole).find(r => r !== undefined);
    const step = cell.tags.map(stepOfTag).find(s => s !== undefined && STEP_NAME.test(s));
    const badStep = cell.tags.find(t => {
      const name = stepOfTag(t);
      return name !== undefined && !STEP_NAME.test(name);
    });
    let chip: Omit<IChip, 'problems'>;
    if (badStep && !step) {
      chip = { kind: 'unassigned', label: badStep.trim() }; // show what was typed, flagged
    } else if (role) {
      chip = { kind: role, label: ROLE_LABELS[role] };
      if (role === 'imports' || role === 'functions') {
        prelude = role;
      }
    } else if (step) {
      currentStep = step;
      prelude = undefined;
      chip = { kind: 'step', label: step, step };
    } else if (prelude) {
      chip = { kind: 'continues-prelude', label: `continues ${prelude}` };
    } else if (currentStep) {
      chip = { kind: 'continues', label: `continues ${currentStep}`, step: currentStep };
    } else if (hasCode(cell.source)) {
      chip = { kind: 'unassigned', label: 'no step' };
      if (!found.some(p => p.message.includes('before the first step'))) {
        found.push({
          cell: index,
          message: 'code cell before the first step: tag it step:NAME, imports, functions or skip',
          severity: 'error'
        });
      }
    } else {
      chip = { kind: 'empty', label: '' };
    }
    return { ...chip, problems: found };
  });
  const hues = assignHues(chips.filter(c => c.kind === 'step').map(c => c.step as string));
  return chips.map(c =>
    c.step !== undefined ? { ...c, hue: hues.get(c.step) ?? stepHue(c.step) } : c
  );
}

/** The steps that start at some cell other than `index` (1-based), for "name already used" checks. */
export function stepsStartingElsewhere(cells: readonly ICellInput[], index: number): string[] {
  const names: string[] = [];
  cells.forEach((cell, i) => {
    if (i + 1 !== index && cell.type === 'code') {
      for (const tag of cell.tags) {
        const step = stepOfTag(tag);
        if (step !== undefined && !names.includes(step)) {
          names.push(step);
        }
      }
    }
  });
  return names;
}

/** The steps tagged above a cell, in order (candidates for prev: and for "continue step"). */
export function stepsAbove(cells: readonly ICellInput[], index: number): string[] {
  return stepsStartingElsewhere(cells.slice(0, Math.max(0, index - 1)), -1);
}
