/**
 * Draws each code cell's role chip. The chip sits in a band every code cell reserves (CSS
 * `.cp-chips-on .jp-CodeCell`), so changing a role never moves the notebook's content.
 */
import { NotebookPanel } from '@jupyterlab/notebook';
import { IChip } from './chips';
import { NotebookState } from './tracker';

const CHIP_CLASS = 'cp-Chip';

export class ChipsView {
  constructor(
    private readonly state: NotebookState,
    private readonly onActivate: (panel: NotebookPanel, cellIndex: number) => void,
    private enabled: boolean
  ) {
    state.changed.connect(this.render, this);
    this.render();
  }

  setEnabled(enabled: boolean): void {
    this.enabled = enabled;
    this.render();
  }

  render(): void {
    const panel = this.state.panel;
    panel.content.node.classList.toggle('cp-chips-on', this.enabled);
    const chips = this.state.chips;
    panel.content.widgets.forEach((cell, i) => {
      let node = cell.node.querySelector<HTMLButtonElement>(`:scope > .${CHIP_CLASS}`);
      const chip = chips[i];
      if (!this.enabled || !chip || chip.kind === 'none') {
        node?.remove();
        return;
      }
      if (!node) {
        node = document.createElement('button');
        node.type = 'button';
        node.addEventListener('click', event => {
          event.stopPropagation();
          this.onActivate(panel, panel.content.widgets.indexOf(cell));
        });
        cell.node.appendChild(node);
      }
      paint(node, chip);
    });
  }
}

/** Sets a chip node's text, colour and tooltip; touches the DOM only where something changed. */
function paint(node: HTMLElement, chip: IChip): void {
  const flagged = chip.problems.length > 0;
  const severity = chip.problems[0]?.severity;
  const key = JSON.stringify([chip.kind, chip.label, chip.hue, chip.problems.map(p => p.message)]);
  if (node.dataset.key === key) {
    return;
  }
  node.dataset.key = key;
  node.className =
    `${CHIP_CLASS} cp-Chip-${chip.kind}` + (flagged ? ` cp-Chip-flagged cp-Chip-${severity}` : '');
  node.dataset.kind = chip.kind;
  node.dataset.step = chip.step ?? '';
  if (chip.hue !== undefined) {
    node.style.setProperty('--cp-hue', String(chip.hue));
  } else {
    node.style.removeProperty('--cp-hue');
  }
  const label = chip.kind === 'empty' ? 'no role' : chip.label;
  node.textContent = (flagged ? '⚠ ' : '') + label;
  const problems = chip.problems.map(
    p => `${p.severity === 'error' ? 'Error' : 'Warning'}: ${p.message}`
  );
  const help = 'Click (or Shift+T in command mode) to set this cell\u2019s role';
  node.title = [...problems, help].join('\n');
  node.setAttribute(
    'aria-label',
    `cellpipe role: ${label}${problems.length ? '. ' + problems.join('. ') : ''}. ${help}`
  );
}
