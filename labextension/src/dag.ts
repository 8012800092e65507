/**
 * Layout of the pipeline DAG: one row per parallel level (steps on a row can run at the same time),
 * like `cellpipe inspect --svg`. Pure, so the panel redraws without a server round trip for layout.
 */
import { IPipeline } from './api';

export interface INodeBox {
  name: string;
  level: number;
  x: number; // centre
  y: number; // centre
}

export interface IEdgePath {
  source: string;
  target: string;
  variables: string[];
  d: string; // SVG path
  labelX: number;
  labelY: number;
}

export interface ILayout {
  width: number;
  height: number;
  nodes: INodeBox[];
  edges: IEdgePath[];
  levels: string[][];
}

export const BOX = { width: 132, height: 40, gapX: 24, gapY: 52, margin: 12 };
/** Edge labels are cut to this many characters (the full list is in the tooltip). */
export const LABEL_CHARS = 22;
/** Approximate width of a character of a 10px edge label. */
const CHAR_WIDTH = 5.6;

/** Level of each step: 0 for steps with no upstream, else 1 + the deepest upstream. */
export function levelsOf(steps: { name: string; depends_on: string[] }[]): Map<string, number> {
  const byName = new Map(steps.map(s => [s.name, s]));
  const level = new Map<string, number>();
  const visiting = new Set<string>();
  const visit = (name: string): number => {
    const known = level.get(name);
    if (known !== undefined) {
      return known;
    }
    if (visiting.has(name)) {
      return 0; // a cycle: the server reports it; do not recurse for ever
    }
    visiting.add(name);
    const upstream = (byName.get(name)?.depends_on ?? []).filter(n => byName.has(n));
    const value = upstream.length ? 1 + Math.max(...upstream.map(visit)) : 0;
    visiting.delete(name);
    level.set(name, value);
    return value;
  };
  steps.forEach(s => visit(s.name));
  return level;
}

export function layoutPipeline(pipeline: Pick<IPipeline, 'steps' | 'edges'>): ILayout {
  const level = levelsOf(pipeline.steps);
  const rows: string[][] = [];
  for (const step of pipeline.steps) {
    const row = level.get(step.name) ?? 0;
    (rows[row] = rows[row] ?? []).push(step.name);
  }
  const levels = rows.filter(r => r !== undefined);
  const widest = Math.max(1, ...levels.map(r => r.length));
  // edges that skip a level bend round the right side, their label beside the bend: room for both
  const skipLabels = pipeline.edges
    .filter(e => (level.get(e.target) ?? 0) - (level.get(e.source) ?? 0) > 1)
    .map(e => Math.min(LABEL_CHARS, e.variables.join(', ').length));
  const skipRoom = skipLabels.length
    ? BOX.gapX * 1.5 + Math.max(...skipLabels) * CHAR_WIDTH + 8
    : 0;
  const width = BOX.margin * 2 + widest * BOX.width + (widest - 1) * BOX.gapX + skipRoom;
  const height =
    BOX.margin * 2 + levels.length * BOX.height + Math.max(0, levels.length - 1) * BOX.gapY;
  const centre = new Map<string, INodeBox>();
  levels.forEach((names, row) => {
    const rowWidth = names.length * BOX.width + (names.length - 1) * BOX.gapX;
    const left = (width - skipRoom - rowWidth) / 2;
    names.forEach((name, i) => {
      centre.set(name, {
        name,
        level: row,
        x: left + i * (BOX.width + BOX.gapX) + BOX.width / 2,
        y: BOX.margin + row * (BOX.height + BOX.gapY) + BOX.height / 2
      });
    });
  });
  const edges: IEdgePath[] = [];
  for (const edge of pipeline.edges) {
    const a = centre.get(edge.source);
    const b = centre.get(edge.target);
    if (!a || !b) {
      continue;
    }
    if (b.level - a.level > 1) {
      // skips a level: leave and enter on the right, bending round the boxes in between
      const x1 = a.x + BOX.width / 2;
      const x2 = b.x + BOX.width / 2;
      const bend = Math.max(x1, x2) + BOX.gapX * 1.5;
      edges.push({
        ...edge,
        d: `M ${x1} ${a.y} C ${bend} ${a.y}, ${bend} ${b.y}, ${x2} ${b.y}`,
        labelX: bend - BOX.gapX * 0.4,
        labelY: (a.y + b.y) / 2
      });
    } else {
      const y1 = a.y + BOX.height / 2;
      const y2 = b.y - BOX.height / 2;
      edges.push({
        ...edge,
        d: `M ${a.x} ${y1} C ${a.x} ${(y1 + y2) / 2}, ${b.x} ${(y1 + y2) / 2}, ${b.x} ${y2}`,
        labelX: (a.x + b.x) / 2 + 4,
        labelY: (y1 + y2) / 2 + 4
      });
    }
  }
  return { width, height, nodes: [...centre.values()], edges, levels };
}
