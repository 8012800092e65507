/**
 * The cell tag language, as the cellpipe CLI reads it (jupyter_ext/notebook/tags.py).
 *
 * Pure functions, no JupyterLab imports, so they are unit-tested on their own. Two jobs:
 * `parseTags` reads a cell's tags into a `CellRole` (the editor's model), `applyRole` writes a
 * `CellRole` back as tags, changing only the tags the role editor owns and keeping every other tag
 * (hide-input, label:, secret:, data:, ...) where it was.
 */

/** Step names the CLI accepts: lowercase letters, digits and underscores, not starting with a digit. */
export const STEP_NAME = /^[a-z_][a-z0-9_]*$/;
/** A Kubernetes quantity: 2, 0.5, 500m, 4Gi. */
export const QUANTITY = /^[0-9]+(\.[0-9]+)?([eE][0-9]+|[munkMGTPE]|[KMGTPE]i)?$/;

/** The special (non-step) roles and the tags that mean them; the first spelling is the one we write. */
export const ROLE_TAGS: Record<SpecialRole, string[]> = {
  imports: ['imports'],
  functions: ['functions'],
  parameters: ['parameters', 'pipeline-parameters'],
  metrics: ['pipeline-metrics'],
  skip: ['skip', 'injected-parameters']
};

export type SpecialRole = 'imports' | 'functions' | 'parameters' | 'metrics' | 'skip';
/** `none`: no role tag; the cell continues the step (or imports/functions cells) above it. */
export type RoleKind = 'none' | 'step' | SpecialRole;

export const GPU_RESOURCE = 'nvidia.com/gpu';

/** What the role editor shows and edits for one cell. */
export interface ICellRole {
  kind: RoleKind;
  /** step name (kind "step") */
  step: string;
  /** explicit upstream steps (prev:NAME) */
  prev: string[];
  /** GPU count, "" for none */
  gpu: string;
  cpu: string;
  memory: string;
  image: string;
  cache: 'default' | 'enabled' | 'disabled';
}

export function emptyRole(kind: RoleKind = 'none'): ICellRole {
  return { kind, step: '', prev: [], gpu: '', cpu: '', memory: '', image: '', cache: 'default' };
}

/** Every tag spelling that means a special role, to the role. */
const SPECIAL: Map<string, SpecialRole> = new Map(
  (Object.keys(ROLE_TAGS) as SpecialRole[]).flatMap(role =>
    ROLE_TAGS[role].map(tag => [tag, role] as [string, SpecialRole])
  )
);

/** The role a single tag sets, if it is a role tag. */
export function specialRole(tag: string): SpecialRole | undefined {
  return SPECIAL.get(tag.trim());
}

/** `step:NAME` or Kale's legacy `block:NAME` -> NAME. */
export function stepOfTag(tag: string): string | undefined {
  const match = /^(step|block):(.*)$/.exec(tag.trim());
  return match ? match[2] : undefined;
}

function limitOfTag(tag: string): [string, string] | undefined {
  const match = /^limit:(.+):([^:]+)$/.exec(tag.trim());
  return match ? [match[1], match[2]] : undefined;
}

/** Reads a cell's tags the way the role editor presents them (the first step if Kale gave several). */
export function parseTags(tags: readonly string[]): ICellRole {
  const role = emptyRole();
  for (const raw of tags) {
    const tag = raw.trim();
    const special = specialRole(tag);
    const step = stepOfTag(tag);
    const limit = limitOfTag(tag);
    if (special) {
      role.kind = special;
    } else if (step !== undefined) {
      if (role.kind !== 'step') {
        role.kind = 'step';
        role.step = step;
      }
    } else if (tag.startsWith('prev:')) {
      role.prev.push(tag.slice('prev:'.length));
    } else if (limit && limit[0].endsWith('/gpu')) {
      role.gpu = limit[1];
    } else if (limit && limit[0] === 'cpu') {
      role.cpu = limit[1];
    } else if (limit && limit[0] === 'memory') {
      role.memory = limit[1];
    } else if (tag.startsWith('image:')) {
      role.image = tag.slice('image:'.length);
    } else if (tag === 'cache:enabled' || tag === 'cache:disabled') {
      role.cache = tag === 'cache:enabled' ? 'enabled' : 'disabled';
    }
  }
  return role;
}

/** The tags a role means, in the spelling we write. Step settings go only on step cells. */
export function roleToTags(role: ICellRole): string[] {
  if (role.kind === 'none') {
    return [];
  }
  if (role.kind !== 'step') {
    return [ROLE_TAGS[role.kind][0]];
  }
  const tags = [`step:${role.step.trim()}`];
  tags.push(...role.prev.map(name => `prev:${name}`));
  if (role.gpu.trim()) {
    tags.push(`limit:${GPU_RESOURCE}:${role.gpu.trim()}`);
  }
  if (role.cpu.trim()) {
    tags.push(`limit:cpu:${role.cpu.trim()}`);
  }
  if (role.memory.trim()) {
    tags.push(`limit:memory:${role.memory.trim()}`);
  }
  if (role.image.trim()) {
    tags.push(`image:${role.image.trim()}`);
  }
  if (role.cache !== 'default') {
    tags.push(`cache:${role.cache}`);
  }
  return tags;
}

/** Whether the role editor owns a tag (and so may remove it). Other tags are never touched. */
export function isEditorTag(tag: string): boolean {
  const t = tag.trim();
  if (
    specialRole(t) ||
    stepOfTag(t) !== undefined ||
    t.startsWith('prev:') ||
    t.startsWith('image:')
  ) {
    return true;
  }
  if (t === 'cache:enabled' || t === 'cache:disabled') {
    return true;
  }
  const limit = limitOfTag(t);
  return !!limit && (limit[0].endsWith('/gpu') || limit[0] === 'cpu' || limit[0] === 'memory');
}

/** Same meaning, different spelling: `block:x` == `step:x`, `pipeline-parameters` == `parameters`. */
function sameMeaning(a: string, b: string): boolean {
  if (a === b) {
    return true;
  }
  const special = specialRole(a);
  if (special) {
    return special === specialRole(b);
  }
  const step = stepOfTag(a);
  return step !== undefined && step === stepOfTag(b);
}

/**
 * The cell's new tags for a role: editor-owned tags the role no longer means are removed, the ones
 * it still means stay in place with their spelling (`block:` stays `block:`), new ones are appended,
 * every other tag is kept in its position. Applying the role a cell already has returns its tags.
 */
export function applyRole(tags: readonly string[], role: ICellRole): string[] {
  const wanted = roleToTags(role);
  const kept: string[] = [];
  const covered = new Set<string>();
  for (const tag of tags) {
    if (!isEditorTag(tag)) {
      kept.push(tag);
      continue;
    }
    const match = wanted.find(w => !covered.has(w) && sameMeaning(tag.trim(), w));
    if (match !== undefined) {
      kept.push(tag);
      covered.add(match);
    }
  }
  return kept.concat(wanted.filter(w => !covered.has(w)));
}

/** Validation messages for the role editor, per field; an empty object means valid. */
export function validateRole(
  role: ICellRole,
  context: { stepsElsewhere?: readonly string[] } = {}
): Partial<Record<keyof ICellRole, string>> {
  const errors: Partial<Record<keyof ICellRole, string>> = {};
  if (role.kind !== 'step') {
    return errors;
  }
  const name = role.step.trim();
  if (!name) {
    errors.step = 'Name the step, e.g. train_model';
  } else if (!STEP_NAME.test(name)) {
    errors.step =
      `'${name}' is not a valid step name: use lowercase letters, digits and underscores, ` +
      "starting with a letter or '_' (e.g. train_model)";
  } else if (context.stepsElsewhere?.includes(name)) {
    errors.step = `Step '${name}' already starts elsewhere: a step is one run of consecutive cells`;
  }
  const badPrev = role.prev.find(p => !STEP_NAME.test(p));
  if (badPrev !== undefined) {
    errors.prev = `'${badPrev}' is not a valid step name`;
  } else if (name && role.prev.includes(name)) {
    errors.prev = 'A step cannot run after itself';
  }
  const gpu = role.gpu.trim();
  if (gpu && !(/^[0-9]+$/.test(gpu) && Number(gpu) > 0)) {
    errors.gpu = `GPU count '${gpu}' must be a whole number, e.g. 1`;
  }
  for (const field of ['cpu', 'memory'] as const) {
    const value = role[field].trim();
    if (value && !QUANTITY.test(value)) {
      errors[field] =
        `'${value}' is not a resource quantity (e.g. ${field === 'cpu' ? '2 or 500m' : '4Gi'})`;
    }
  }
  if (/\s/.test(role.image.trim())) {
    errors.image = 'An image reference has no spaces, e.g. registry.example.com/team/image:1.0';
  }
  return errors;
}

/** Same tags in the same order. */
export function sameTags(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((tag, i) => tag === b[i]);
}
