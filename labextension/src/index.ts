/**
 * cellpipe in JupyterLab: wires the pieces to the application (commands, toolbar button, chips,
 * the pipeline panel, the runs view, the read-only runs drive, settings).
 */
import { ILayoutRestorer, JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { ICommandPalette, MainAreaWidget, WidgetTracker } from '@jupyterlab/apputils';
import { URLExt } from '@jupyterlab/coreutils';
import { IDocumentManager } from '@jupyterlab/docmanager';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { ToolbarButton } from '@jupyterlab/ui-components';
import { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { CellpipeClient } from './api';
import { DEFAULT_SETTINGS, ISettings, PipelineActions } from './actions';
import { ChipsView } from './chipsview';
import { RunsDrive, isStepNotebook, stepNotebookPath } from './drive';
import { pipelineIcon } from './icons';
import { PipelinePanel } from './panel';
import { editCellRole } from './roleeditor';
import { RunsView } from './runs';
import { openScheduleDialog, SchedulesView } from './schedules';
import { ICellRole, RoleKind, applyRole, emptyRole, parseTags } from './tags';
import { NotebookState } from './tracker';

const PLUGIN_ID = 'cellpipe-labextension:plugin';

export namespace CommandIDs {
  export const run = 'cellpipe:run-pipeline';
  export const editRole = 'cellpipe:edit-role';
  export const newStep = 'cellpipe:new-step';
  export const setRole = 'cellpipe:set-role';
  export const openRuns = 'cellpipe:open-runs';
  export const openPanel = 'cellpipe:open-panel';
  export const schedule = 'cellpipe:schedule';
  export const openSchedules = 'cellpipe:open-schedules';
}

/**
 * A right click in a cell's code leaves another cell active (JupyterLab activates the clicked cell
 * for its prompt, not its editor), so "Set Cell Role…" and the other cell entries of the context
 * menu would act on a cell the user did not click: make the clicked cell the active one first.
 */
function activateClickedCell(panel: NotebookPanel, event: MouseEvent): void {
  const notebook = panel.content;
  const target = event.target instanceof Element ? event.target.closest('.jp-Cell') : null;
  const index = notebook.widgets.findIndex(cell => cell.node === target);
  if (event.shiftKey || index < 0 || notebook.isSelectedOrActive(notebook.widgets[index])) {
    return; // Shift: the browser's own menu; a selected cell: the menu acts on the selection
  }
  notebook.mode = 'command';
  notebook.deselectAll();
  notebook.activeCellIndex = index;
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description: 'cellpipe: cell roles, the pipeline panel, Run as pipeline, runs and schedules.',
  autoStart: true,
  requires: [INotebookTracker, IDocumentManager],
  optional: [ISettingRegistry, ICommandPalette, ILayoutRestorer],
  activate: (
    app: JupyterFrontEnd,
    notebooks: INotebookTracker,
    docManager: IDocumentManager,
    settingRegistry: ISettingRegistry | null,
    palette: ICommandPalette | null,
    restorer: ILayoutRestorer | null
  ) => {
    const serverSettings = ServerConnection.makeSettings();
    // cache 'no-cache' (not the default 'no-store'): no `?<timestamp>` cache-buster is added to GETs,
    // which the API's strict query validation would refuse as an unknown field
    const client = new CellpipeClient((route, init) =>
      ServerConnection.makeRequest(
        URLExt.join(serverSettings.baseUrl, 'cellpipe', 'api', route),
        { cache: 'no-cache', ...init },
        serverSettings
      )
    );
    app.serviceManager.contents.addDrive(new RunsDrive(client, serverSettings));

    const states = new WeakMap<NotebookPanel, NotebookState>();
    const chipViews = new Set<ChipsView>();
    const actions = new PipelineActions(
      client,
      runId => void app.commands.execute(CommandIDs.openRuns, { run: runId ?? '' })
    );
    const stateOf = (panel: NotebookPanel | null): NotebookState | null =>
      panel ? (states.get(panel) ?? null) : null;

    /** The notebook in focus, unless it is an executed step notebook (a read-only view of a run). */
    const current = (): NotebookPanel | null => {
      const panel = notebooks.currentWidget;
      return panel && !isStepNotebook(panel.context.path) ? panel : null;
    };
    const enabled = (): boolean => current() !== null;

    const goToCell = async (panel: NotebookPanel, cell: number): Promise<void> => {
      const notebook = panel.content;
      const index = Math.max(0, Math.min(cell - 1, notebook.widgets.length - 1));
      app.shell.activateById(panel.id);
      notebook.activeCellIndex = index;
      notebook.mode = 'command';
      await notebook.scrollToCell(notebook.widgets[index], 'center');
      notebook.widgets[index]?.node.focus();
    };

    const parametersOf = (panel: NotebookPanel) =>
      stateOf(panel)?.analysis?.pipeline.parameters ?? [];

    // -- the pipeline panel -------------------------------------------------------------------------
    const pipelinePanel = new PipelinePanel({
      actions,
      current: () => stateOf(current()),
      goToCell: cell => {
        const panel = current();
        if (panel) {
          void goToCell(panel, cell);
        }
      },
      run: () => void app.commands.execute(CommandIDs.run),
      openRuns: () => void app.commands.execute(CommandIDs.openRuns),
      openSchedule: () => void app.commands.execute(CommandIDs.schedule)
    });
    app.shell.add(pipelinePanel, 'right', { rank: 600 });
    restorer?.add(pipelinePanel, 'cellpipe-pipeline');

    // -- the runs and schedules views ---------------------------------------------------------------
    const runsTracker = new WidgetTracker<MainAreaWidget<RunsView>>({ namespace: 'cellpipe-runs' });
    let runsWidget: MainAreaWidget<RunsView> | null = null;
    const runsHost = {
      client,
      currentPath: () => current()?.context.path ?? null,
      openStepNotebook: (runId: string, step: string) => {
        const widget = docManager.openOrReveal(stepNotebookPath(runId, step), 'Notebook');
        // a read-only view of what ran: no kernel (none started per opened tab, and no kernel
        // metadata written into it, which made the tab "modified" and asked to save on close)
        if (widget) {
          widget.context.sessionContext.kernelPreference = {
            shouldStart: false,
            canStart: false,
            autoStartDefault: false
          };
        }
      },
      goToCell: (path: string, cell: number) => {
        const widget = docManager.openOrReveal(path);
        if (widget instanceof NotebookPanel) {
          void widget.context.ready.then(() => goToCell(widget, cell));
        }
      },
      // behind the Kubeflow central dashboard, JupyterLab and the KFP UI share the page's origin
      kfpBase: () => actions.settings.kfpUiBase || window.location.origin
    };
    let schedulesWidget: MainAreaWidget<SchedulesView> | null = null;

    // -- per-notebook: state, chips, toolbar button -------------------------------------------------
    const chipsActivate = (panel: NotebookPanel, index: number): void => {
      panel.content.activeCellIndex = index;
      void editCellRole(panel, index);
    };
    notebooks.widgetAdded.connect((_, panel) => {
      if (isStepNotebook(panel.context.path)) {
        return; // an executed step notebook (read-only view of a run): not a pipeline to edit or run
      }
      void panel.context.ready.then(() => {
        const state = new NotebookState(panel, client, () => actions.settings.liveDag);
        states.set(panel, state);
        const view = new ChipsView(state, chipsActivate, actions.settings.showChips);
        chipViews.add(view);
        panel.disposed.connect(() => chipViews.delete(view));
        if (notebooks.currentWidget === panel) {
          pipelinePanel.setState(state);
        }
      });
      const button = new ToolbarButton({
        icon: pipelineIcon,
        label: 'Run as pipeline',
        tooltip: 'Save, snapshot and run this notebook as a pipeline (cellpipe)',
        className: 'cp-ToolbarRun',
        onClick: () => void actions.run(panel, parametersOf(panel))
      });
      panel.toolbar.insertAfter('cellType', 'cellpipe-run', button);
      panel.content.node.addEventListener(
        'contextmenu',
        event => activateClickedCell(panel, event),
        {
          capture: true
        }
      );
    });
    notebooks.currentChanged.connect((_, panel) => {
      if (panel && isStepNotebook(panel.context.path)) {
        return; // keep showing the pipeline (and runs) the user came from
      }
      pipelinePanel.setState(stateOf(panel));
      runsWidget?.content.followPath(panel?.context.path ?? null);
    });

    // -- commands -----------------------------------------------------------------------------------

    app.commands.addCommand(CommandIDs.run, {
      label: 'Run as Pipeline',
      caption: 'Save, snapshot and run the notebook as a pipeline',
      icon: pipelineIcon,
      isEnabled: enabled,
      execute: async () => {
        const panel = current();
        return panel ? actions.run(panel, parametersOf(panel)) : null;
      }
    });
    const targetCell = (panel: NotebookPanel, args: ReadonlyPartialJSONObject): number =>
      typeof args.index === 'number' ? args.index : panel.content.activeCellIndex;
    app.commands.addCommand(CommandIDs.editRole, {
      label: 'Set Cell Role…',
      caption:
        'Choose this cell’s pipeline role: step, imports, functions, parameters, metrics, skip',
      isEnabled: enabled,
      execute: async args => {
        const panel = current();
        return panel ? editCellRole(panel, targetCell(panel, args)) : null;
      }
    });
    app.commands.addCommand(CommandIDs.newStep, {
      label: 'Start a New Step Here',
      caption: 'Tag the active cell step:NAME',
      isEnabled: enabled,
      execute: async args => {
        const panel = current();
        return panel ? editCellRole(panel, targetCell(panel, args), { startStep: true }) : null;
      }
    });
    app.commands.addCommand(CommandIDs.setRole, {
      label: 'Set Cell Role (no dialog)',
      caption: 'Set the active cell’s role from arguments: kind, step',
      isEnabled: enabled,
      execute: args => {
        const panel = current();
        const cell = panel?.content.activeCell;
        if (!cell || cell.model.type !== 'code') {
          return null;
        }
        const raw = cell.model.getMetadata('tags');
        const tags: string[] = Array.isArray(raw) ? raw.map(String) : [];
        const role: ICellRole = {
          ...(typeof args.kind === 'string' ? emptyRole(args.kind as RoleKind) : parseTags(tags)),
          step: typeof args.step === 'string' ? args.step : ''
        };
        const next = applyRole(tags, role);
        cell.model.setMetadata('tags', next);
        return next;
      }
    });
    app.commands.addCommand(CommandIDs.openRuns, {
      label: 'Pipeline Runs',
      caption: 'Runs of this notebook and of all notebooks',
      icon: pipelineIcon,
      execute: args => {
        if (!runsWidget || runsWidget.isDisposed) {
          runsWidget = new MainAreaWidget({ content: new RunsView(runsHost) });
          runsWidget.id = 'cellpipe-runs-view';
          runsWidget.title.label = 'Pipeline runs';
          runsWidget.title.icon = pipelineIcon;
          void runsTracker.add(runsWidget);
          app.shell.add(runsWidget, 'main', { mode: 'split-right' });
        }
        app.shell.activateById(runsWidget.id);
        runsWidget.content.followPath(current()?.context.path ?? null);
        runsWidget.content.reveal(typeof args.run === 'string' && args.run ? args.run : undefined);
      }
    });
    app.commands.addCommand(CommandIDs.openPanel, {
      label: 'Show Pipeline Panel',
      icon: pipelineIcon,
      execute: () => app.shell.activateById(pipelinePanel.id)
    });
    app.commands.addCommand(CommandIDs.schedule, {
      label: 'Schedule Notebook…',
      caption: 'Run this notebook on a cron schedule',
      isEnabled: enabled,
      execute: async () => {
        const panel = current();
        if (!panel) {
          return null;
        }
        const created = await openScheduleDialog(
          client,
          actions,
          panel.context.path,
          parametersOf(panel)
        );
        if (created) {
          void app.commands.execute(CommandIDs.openSchedules);
        }
        return created;
      }
    });
    app.commands.addCommand(CommandIDs.openSchedules, {
      label: 'Pipeline Schedules',
      icon: pipelineIcon,
      execute: () => {
        if (!schedulesWidget || schedulesWidget.isDisposed) {
          schedulesWidget = new MainAreaWidget({
            content: new SchedulesView(client, actions)
          });
          schedulesWidget.id = 'cellpipe-schedules-view';
          schedulesWidget.title.label = 'Pipeline schedules';
          schedulesWidget.title.icon = pipelineIcon;
          app.shell.add(schedulesWidget, 'main'); // a wide table: a tab of its own
        }
        app.shell.activateById(schedulesWidget.id);
        void schedulesWidget.content.refresh();
      }
    });

    // a group of their own in a code cell's context menu, after JupyterLab's cell items (ranks 0-12)
    const cellMenu = { selector: '.jp-Notebook .jp-CodeCell', rank: 19 };
    app.contextMenu.addItem({ ...cellMenu, type: 'separator' });
    for (const command of [CommandIDs.editRole, CommandIDs.newStep]) {
      app.contextMenu.addItem({ ...cellMenu, command, rank: 20 });
    }
    if (palette) {
      for (const command of Object.values(CommandIDs).filter(c => c !== CommandIDs.setRole)) {
        palette.addItem({ command, category: 'cellpipe' });
      }
    }

    // -- settings -----------------------------------------------------------------------------------
    const applySettings = (settings: ISettings): void => {
      const liveBefore = actions.settings.liveDag;
      actions.settings = settings;
      chipViews.forEach(view => view.setEnabled(settings.showChips));
      if (settings.liveDag && !liveBefore) {
        const state = stateOf(current());
        state?.refresh(0);
      }
      pipelinePanel.update();
      runsWidget?.content.update(); // its KFP links follow the KFP UI base URL
    };
    if (settingRegistry) {
      void settingRegistry.load(PLUGIN_ID).then(loaded => {
        const read = (): ISettings => ({
          ...DEFAULT_SETTINGS,
          ...(loaded.composite as Partial<ISettings>)
        });
        applySettings(read());
        loaded.changed.connect(() => applySettings(read()));
      });
    }
    void actions.loadConfig();
  }
};

export default plugin;
