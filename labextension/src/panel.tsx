/**
 * The pipeline side panel for the notebook in focus: the live DAG, errors and warnings linking to
 * their cells, the parameters form, the target selector and the run button.
 */
import * as React from 'react';
import {
  Button,
  FormComponent,
  IFormComponentProps,
  ReactWidget,
  runIcon
} from '@jupyterlab/ui-components';
import { ReadonlyJSONObject } from '@lumino/coreutils';
import validator from '@rjsf/validator-ajv8';
import { RJSFSchema } from '@rjsf/utils';
import { parametersSchema } from './params';
import { IAnalysis, IParameter } from './api';
import { PipelineActions } from './actions';
import { BOX, IEdgePath, LABEL_CHARS, layoutPipeline } from './dag';
import { NotebookState, warningText } from './tracker';
import { pipelineIcon } from './icons';
import { ErrorBanner, StyledSelect } from './components';

/** rjsf's AJV validator, typed for JupyterLab's form (same rjsf version; the generics differ only). */
const formValidator = validator as unknown as IFormComponentProps['validator'];

export interface IPanelHost {
  actions: PipelineActions;
  /** The state of the notebook in focus, or null. */
  current: () => NotebookState | null;
  /** Scroll to and select a cell (1-based CLI numbering) of the notebook in focus. */
  goToCell: (cell: number) => void;
  run: () => void;
  openRuns: () => void;
  openSchedule: () => void;
}

export class PipelinePanel extends ReactWidget {
  constructor(private readonly host: IPanelHost) {
    super();
    this.id = 'cellpipe-pipeline';
    this.addClass('cp-Panel');
    this.title.icon = pipelineIcon;
    this.title.caption = 'cellpipe pipeline';
    host.actions.changed.connect(() => this.update());
  }

  /** Follow another notebook (or none). */
  setState(state: NotebookState | null): void {
    if (state === this.state) {
      return;
    }
    this.state?.changed.disconnect(this.onStateChanged, this);
    this.state = state;
    state?.changed.connect(this.onStateChanged, this);
    this.update();
  }

  protected render(): JSX.Element {
    return (
      <PanelView host={this.host} state={this.state} generation={this.state?.generation ?? 0} />
    );
  }

  private onStateChanged(): void {
    this.update();
  }

  private state: NotebookState | null = null;
}

function PanelView(props: {
  host: IPanelHost;
  state: NotebookState | null;
  generation: number;
}): JSX.Element {
  const { host, state } = props;
  if (!state) {
    return (
      <div className="cp-Panel-empty">
        <h2>Pipeline</h2>
        <p>
          Open a notebook to see it as a pipeline. Tag cells with a role (click a cell’s chip, or
          Shift+S to start a step).
        </p>
      </div>
    );
  }
  const analysis = state.analysis;
  const error = state.error;
  const live = host.actions.settings.liveDag;
  const name = state.path.split('/').pop();
  return (
    <div className="cp-Panel-body">
      <header className="cp-Panel-header">
        <h2 title={state.path}>{name}</h2>
        <span
          className={`cp-Panel-status ${state.analysing ? 'cp-mod-busy' : ''}`}
          aria-live="polite"
        >
          {state.analysing ? 'analysing…' : analysis ? summary(analysis) : ''}
        </span>
      </header>
      {!live && (
        <div className="cp-Banner cp-Banner-info cp-Panel-liveOff" role="status">
          <strong>Live graph is off</strong>
          <span>
            {state.outdated
              ? 'The notebook changed since this graph was drawn.'
              : analysis || error
                ? 'The graph is not redrawn as you edit.'
                : 'The notebook is not analysed as you edit.'}{' '}
            Turn it on in Settings › cellpipe › Live pipeline graph.
          </span>
          <button
            className="cp-Link"
            disabled={state.analysing}
            onClick={() => void state.analyse()}
          >
            Analyse now
          </button>
        </div>
      )}
      {error && (
        <ErrorBanner
          title={
            error.status === 400
              ? 'This notebook cannot run as a pipeline yet'
              : 'cellpipe cannot analyse this notebook'
          }
          error={error}
        >
          {!!error.body.cell && (
            <button className="cp-Link" onClick={() => host.goToCell(error.body.cell as number)}>
              Go to cell {error.body.cell}
            </button>
          )}
        </ErrorBanner>
      )}
      {analysis && (
        <Dag
          analysis={analysis}
          stale={!!error || state.outdated}
          onStep={cell => host.goToCell(cell)}
          hue={step => state.hue(step)}
          generation={props.generation}
        />
      )}
      {analysis?.warnings && analysis.warnings.length > 0 && (
        <ul className="cp-Warnings" aria-label="Warnings">
          {analysis.warnings.map((warning, i) => (
            <li key={i} className="cp-Warning">
              <span>⚠ {warningText(warning)}</span>
              {!!warning.cell && (
                <button className="cp-Link" onClick={() => host.goToCell(warning.cell as number)}>
                  cell {warning.cell}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {analysis && analysis.pipeline.parameters.length > 0 && (
        <section className="cp-Section" aria-label="Parameters">
          <h3>Parameters</h3>
          <ParametersForm
            key={state.path}
            parameters={analysis.pipeline.parameters}
            values={host.actions.parameterValues(state.path)}
            onChange={values => host.actions.setParameterValues(state.path, values)}
          />
        </section>
      )}
      <section className="cp-Section cp-RunSection" aria-label="Run">
        <TargetSelect host={host} path={state.path} />
        <div className="cp-Buttons">
          <Button
            className="cp-RunButton"
            onClick={() => host.run()}
            title="Save, snapshot and run this notebook as a pipeline"
          >
            <runIcon.react tag="span" className="cp-ButtonIcon" />
            Run as pipeline
          </Button>
          <Button
            minimal
            onClick={() => host.openSchedule()}
            title="Run this notebook on a schedule"
          >
            Schedule…
          </Button>
          <Button minimal onClick={() => host.openRuns()} title="Runs of this notebook">
            Runs
          </Button>
        </div>
      </section>
    </div>
  );
}

function summary(analysis: IAnalysis): string {
  const steps = analysis.pipeline.steps.length;
  const levels = analysis.levels?.length ?? 0;
  return `${steps} step${steps === 1 ? '' : 's'} · ${levels} level${levels === 1 ? '' : 's'}`;
}

function Dag(props: {
  analysis: IAnalysis;
  stale: boolean;
  generation: number;
  onStep: (cell: number) => void;
  hue: (step: string) => number;
}): JSX.Element {
  const pipeline = props.analysis.pipeline;
  const layout = React.useMemo(() => layoutPipeline(pipeline), [pipeline]);
  const firstCell = new Map(pipeline.steps.map(s => [s.name, s.cells[0]?.index ?? 0]));
  const steps = new Map(pipeline.steps.map(s => [s.name, s]));
  return (
    <figure
      className={`cp-Dag ${props.stale ? 'cp-mod-stale' : ''}`}
      data-generation={props.generation}
      data-steps={pipeline.steps.map(s => s.name).join(',')}
      aria-label="Pipeline graph"
    >
      <svg
        width={layout.width}
        height={layout.height}
        viewBox={`0 0 ${layout.width} ${layout.height}`}
        role="group"
      >
        <defs>
          <marker
            id="cp-arrow"
            viewBox="0 0 10 10"
            refX="9"
            refY="5"
            markerWidth="7"
            markerHeight="7"
            orient="auto-start-reverse"
          >
            <path d="M 0 0 L 10 5 L 0 10 z" className="cp-Dag-arrow" />
          </marker>
        </defs>
        {layout.edges.map((edge: IEdgePath) => (
          <g key={`${edge.source}->${edge.target}`} className="cp-Dag-edge">
            <path
              d={edge.d}
              className={edge.variables.length ? '' : 'cp-mod-order'}
              markerEnd="url(#cp-arrow)"
            />
            {edge.variables.length > 0 && (
              <text x={edge.labelX} y={edge.labelY}>
                <title>{edge.variables.join(', ')}</title>
                {truncate(edge.variables.join(', '), LABEL_CHARS)}
              </text>
            )}
          </g>
        ))}
        {layout.nodes.map(node => {
          const step = steps.get(node.name);
          const gpu = step && Object.keys(step.limits).some(k => k.endsWith('/gpu'));
          const detail = [
            step?.parameters.length ? `${step.parameters.length} param` : '',
            step?.metrics.length ? step.metrics.join(', ') : '',
            gpu ? 'GPU' : ''
          ]
            .filter(Boolean)
            .join(' · ');
          const go = (): void => props.onStep(firstCell.get(node.name) ?? 0);
          return (
            <g
              key={node.name}
              className="cp-Dag-node"
              data-step={node.name}
              style={{ '--cp-hue': props.hue(node.name) } as React.CSSProperties}
              transform={`translate(${node.x - BOX.width / 2}, ${node.y - BOX.height / 2})`}
              tabIndex={0}
              role="button"
              aria-label={`Step ${node.name}, starts at cell ${firstCell.get(node.name)}`}
              onClick={go}
              onKeyDown={e => {
                if (e.key === 'Enter' || e.key === ' ') {
                  e.preventDefault();
                  go();
                }
              }}
            >
              <title>{`${node.name}: cell ${firstCell.get(node.name)}${step?.inputs.length ? `\nreads ${step.inputs.join(', ')}` : ''}`}</title>
              <rect width={BOX.width} height={BOX.height} rx={6} />
              <text x={BOX.width / 2} y={detail ? 17 : 24} className="cp-Dag-name">
                {truncate(node.name, 18)}
              </text>
              {detail && (
                <text x={BOX.width / 2} y={31} className="cp-Dag-detail">
                  {truncate(detail, 24)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
    </figure>
  );
}

function truncate(text: string, length: number): string {
  return text.length > length ? `${text.slice(0, length - 1)}…` : text;
}

function ParametersForm(props: {
  parameters: IParameter[];
  values: Record<string, unknown>;
  onChange: (values: Record<string, unknown>) => void;
}): JSX.Element {
  const { schema, uiSchema } = React.useMemo(
    () => parametersSchema(props.parameters),
    [props.parameters]
  );
  const defaults = Object.fromEntries(
    Object.entries(schema.properties ?? {}).map(([k, v]) => [k, (v as RJSFSchema).default])
  );
  const formData = { ...defaults, ...props.values };
  return (
    <div className="cp-Parameters">
      <FormComponent
        schema={schema}
        uiSchema={
          {
            ...uiSchema,
            'ui:submitButtonOptions': { norender: true }
          } as IFormComponentProps['uiSchema']
        }
        formData={formData as ReadonlyJSONObject}
        validator={formValidator}
        liveValidate
        showModifiedFromDefault
        compact
        onChange={e => {
          const changed: Record<string, unknown> = {};
          for (const [key, value] of Object.entries(e.formData ?? {})) {
            if (JSON.stringify(value) !== JSON.stringify(defaults[key])) {
              changed[key] = value;
            }
          }
          props.onChange(changed);
        }}
      />
    </div>
  );
}

function TargetSelect(props: { host: IPanelHost; path: string }): JSX.Element {
  const actions = props.host.actions;
  const targets = actions.targets();
  const current = actions.target(props.path);
  const unavailable = targets.filter(t => !t.available);
  return (
    <div className="cp-Target">
      <label>
        <span>Run on</span>
        <StyledSelect
          value={current}
          onChange={e => actions.setTarget(props.path, e.target.value)}
          aria-label="Target"
        >
          {targets.map(t => (
            <option key={t.name} value={t.name} disabled={!t.available} title={t.reason ?? ''}>
              {t.label}
              {t.available ? '' : ' (unavailable)'}
            </option>
          ))}
        </StyledSelect>
      </label>
      {unavailable.length > 0 && (
        <ul className="cp-Target-reasons">
          {unavailable.map(t => (
            <li key={t.name}>
              {t.label}: {t.reason ?? 'not available on this server'}
            </li>
          ))}
        </ul>
      )}
      {actions.configError && actions.configError.status !== 404 && (
        <p className="cp-Target-reasons">Targets unknown: {actions.configError.text}</p>
      )}
    </div>
  );
}
