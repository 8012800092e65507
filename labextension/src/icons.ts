import { LabIcon } from '@jupyterlab/ui-components';

/** Three connected steps: the pipeline panel, the runs view and the toolbar button. */
const PIPELINE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <rect x="8" y="2" width="8" height="5" rx="1.5"/>
    <rect x="2" y="17" width="8" height="5" rx="1.5"/>
    <rect x="14" y="17" width="8" height="5" rx="1.5"/>
    <path d="M11.25 7h1.5v4.25H18a1 1 0 0 1 1 1V17h-1.5v-4.25h-11V17H5v-4.75a1 1 0 0 1 1-1h5.25z"/>
  </g>
</svg>`;

export const pipelineIcon = new LabIcon({ name: 'cellpipe:pipeline', svgstr: PIPELINE_SVG });
