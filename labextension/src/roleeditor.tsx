/**
 * The role editor: a JupyterLab dialog to set a cell's role, step name, explicit upstream steps and
 * step settings. Validates like the CLI before anything is written; writes the tags with `applyRole`
 * and only when they change.
 */
import * as React from 'react';
import { Dialog, ReactWidget, showDialog } from '@jupyterlab/apputils';
import { NotebookPanel } from '@jupyterlab/notebook';
import { stepsAbove, stepsStartingElsewhere } from './chips';
import { StyledSelect } from './components';
import {
  ICellRole,
  RoleKind,
  applyRole,
  emptyRole,
  parseTags,
  sameTags,
  validateRole
} from './tags';

const KINDS: { kind: RoleKind; label: string; help: string }[] = [
  { kind: 'step', label: 'Start a step', help: 'This cell starts a pipeline step' },
  { kind: 'none', label: 'Continue above', help: 'Joins the step (or imports) above' },
  { kind: 'imports', label: 'Imports', help: 'Run before every step' },
  { kind: 'functions', label: 'Functions', help: 'Helpers run before every step' },
  { kind: 'parameters', label: 'Parameters', help: 'Typed pipeline parameters' },
  { kind: 'metrics', label: 'Metrics', help: 'Variables reported as metrics' },
  { kind: 'skip', label: 'Skip', help: 'Left out of the pipeline' }
];

interface IEditorProps {
  initial: ICellRole;
  existingSteps: string[];
  stepsAbove: string[];
  stepsElsewhere: string[];
  onChange: (role: ICellRole) => void;
}

function RoleEditor(props: IEditorProps): JSX.Element {
  const [role, setRole] = React.useState<ICellRole>(props.initial);
  const update = (changes: Partial<ICellRole>): void => {
    const next = { ...role, ...changes };
    setRole(next);
    props.onChange(next);
  };
  const errors = validateRole(role, { stepsElsewhere: props.stepsElsewhere });
  const field = (
    key: 'gpu' | 'cpu' | 'memory' | 'image',
    label: string,
    placeholder: string
  ): JSX.Element => (
    <label className="cp-RoleEditor-field">
      <span>{label}</span>
      <input
        className="jp-mod-styled"
        name={key}
        value={role[key]}
        placeholder={placeholder}
        aria-invalid={!!errors[key]}
        onChange={e => update({ [key]: e.target.value })}
      />
      {errors[key] && <span className="cp-RoleEditor-error">{errors[key]}</span>}
    </label>
  );
  return (
    <div className="cp-RoleEditor">
      <div className="cp-RoleEditor-kinds" role="radiogroup" aria-label="Cell role">
        {KINDS.map(k => (
          <label key={k.kind} className="cp-RoleEditor-kind" title={k.help}>
            <input
              type="radio"
              name="cp-role"
              value={k.kind}
              checked={role.kind === k.kind}
              onChange={() => update({ kind: k.kind })}
            />
            {k.label}
          </label>
        ))}
      </div>
      {role.kind === 'step' && (
        <>
          <label className="cp-RoleEditor-field">
            <span>Step name</span>
            <input
              className="jp-mod-styled cp-RoleEditor-step"
              name="step"
              list="cp-existing-steps"
              value={role.step}
              placeholder="e.g. train_model"
              autoComplete="off"
              aria-invalid={!!errors.step}
              onChange={e => update({ step: e.target.value })}
            />
            <datalist id="cp-existing-steps">
              {props.existingSteps.map(name => (
                <option key={name} value={name} />
              ))}
            </datalist>
            {errors.step && <span className="cp-RoleEditor-error">{errors.step}</span>}
          </label>
          {props.stepsAbove.length > 0 && (
            <fieldset className="cp-RoleEditor-prev">
              <legend>Also run after (prev:)</legend>
              {props.stepsAbove
                .filter(name => name !== role.step.trim())
                .map(name => (
                  <label key={name}>
                    <input
                      type="checkbox"
                      checked={role.prev.includes(name)}
                      onChange={e =>
                        update({
                          prev: e.target.checked
                            ? [...role.prev, name]
                            : role.prev.filter(p => p !== name)
                        })
                      }
                    />
                    {name}
                  </label>
                ))}
              {errors.prev && <span className="cp-RoleEditor-error">{errors.prev}</span>}
            </fieldset>
          )}
          <div className="cp-RoleEditor-grid">
            {field('gpu', 'GPUs', '0')}
            {field('cpu', 'CPU', 'e.g. 2 or 500m')}
            {field('memory', 'Memory', 'e.g. 4Gi')}
            <label className="cp-RoleEditor-field">
              <span>Cache</span>
              <StyledSelect
                name="cache"
                value={role.cache}
                onChange={e => update({ cache: e.target.value as ICellRole['cache'] })}
              >
                <option value="default">default</option>
                <option value="enabled">enabled</option>
                <option value="disabled">disabled</option>
              </StyledSelect>
            </label>
          </div>
          {field('image', 'Image', 'default: the notebook image')}
        </>
      )}
    </div>
  );
}

class RoleEditorBody extends ReactWidget implements Dialog.IBodyWidget<ICellRole> {
  constructor(private props: Omit<IEditorProps, 'onChange'>) {
    super();
    this.role = props.initial;
    this.addClass('cp-RoleEditorBody');
  }

  getValue(): ICellRole {
    return this.role;
  }

  protected render(): JSX.Element {
    return <RoleEditor {...this.props} onChange={role => (this.role = role)} />;
  }

  private role: ICellRole;
}

/**
 * Opens the role editor for the cell at `index` (0-based) and writes its tags if the user changed
 * them. `startStep`: open on "Start a step" with the name field focused (the "new step here" command).
 * Returns the cell's new tags, or null when nothing was written.
 */
export async function editCellRole(
  panel: NotebookPanel,
  index: number,
  options: { startStep?: boolean } = {}
): Promise<string[] | null> {
  const model = panel.content.model;
  const cell = model?.cells.get(index);
  if (!model || !cell || cell.type !== 'code') {
    return null;
  }
  const raw = cell.getMetadata('tags');
  const tags: string[] = Array.isArray(raw) ? raw.map(String) : [];
  const cells = [...Array(model.cells.length).keys()].map(i => {
    const c = model.cells.get(i);
    const t = c.getMetadata('tags');
    return { type: c.type, tags: Array.isArray(t) ? t.map(String) : [], source: '' };
  });
  const above = stepsAbove(cells, index + 1);
  const continuing = above[above.length - 1];
  const elsewhere = stepsStartingElsewhere(cells, index + 1).filter(s => s !== continuing);
  let role = parseTags(tags);
  if (options.startStep && role.kind !== 'step') {
    role = { ...emptyRole('step'), step: '' };
  }
  try {
    for (;;) {
      const body = new RoleEditorBody({
        initial: role,
        existingSteps: stepsStartingElsewhere(cells, -1),
        stepsAbove: above,
        stepsElsewhere: elsewhere
      });
      const result = await showDialog({
        title: `Cell ${index + 1}: cellpipe role`,
        body,
        buttons: [Dialog.cancelButton(), Dialog.okButton({ label: 'Apply' })],
        focusNodeSelector:
          role.kind === 'step' ? 'input[name="step"]' : 'input[type="radio"]:checked'
      });
      if (!result.button.accept || !result.value) {
        return null;
      }
      role = result.value;
      const errors = validateRole(role, { stepsElsewhere: elsewhere });
      if (Object.keys(errors).length === 0) {
        break; // otherwise show the editor again, with the messages, keeping what was typed
      }
    }
  } finally {
    returnFocus(panel);
  }
  const next = applyRole(tags, role);
  if (sameTags(next, tags)) {
    return null;
  }
  if (next.length === 0 && raw === undefined) {
    return null;
  }
  if (next.length === 0) {
    cell.deleteMetadata('tags');
  } else {
    cell.setMetadata('tags', next);
  }
  return next;
}

/**
 * The dialog gives the focus back to where it was opened from; from a context menu that node is gone
 * (focus falls to the page): give the keyboard back to the cell, in command mode.
 */
function returnFocus(panel: NotebookPanel): void {
  const focused = document.activeElement;
  if (!focused || focused === document.body || !focused.isConnected) {
    panel.content.mode = 'command';
    panel.content.activeCell?.node.focus();
  }
}
