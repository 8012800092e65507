/** Pieces the runs and schedules views share: their chrome (title, refresh, error, empty state). */
import * as React from 'react';
import { Button, caretDownEmptyIcon, refreshIcon } from '@jupyterlab/ui-components';
import { ApiError } from './api';

/** A failed server call, said where the user is looking. */
export function ErrorBanner(props: {
  title: string;
  error: ApiError;
  children?: React.ReactNode;
}): JSX.Element {
  return (
    <div className="cp-Banner cp-Banner-error" role="alert">
      <strong>{props.title}</strong>
      <span>{props.error.text}</span>
      {props.children}
    </div>
  );
}

/** A list view: heading, extra controls, refresh, the error of the last load, the empty state, the list. */
export function ListChrome(props: {
  title: string;
  controls?: React.ReactNode;
  onRefresh: () => void;
  error: ApiError | null;
  errorTitle: string;
  empty: string | null;
  children: React.ReactNode;
}): JSX.Element {
  return (
    <div className="cp-Runs-body">
      <header className="cp-Runs-header">
        <h2>{props.title}</h2>
        {props.controls}
        <Button
          minimal
          className="cp-Runs-refresh"
          onClick={props.onRefresh}
          title="Refresh"
          aria-label="Refresh"
        >
          <refreshIcon.react tag="span" />
        </Button>
      </header>
      {props.error && <ErrorBanner title={props.errorTitle} error={props.error} />}
      {props.empty && <p className="cp-Muted cp-Runs-empty">{props.empty}</p>}
      {props.children}
    </div>
  );
}

/** Calls `then` after each render has reached the page (React runs effects after the DOM changes). */
export function AfterRender(props: { then: () => void }): null {
  React.useEffect(() => props.then());
  return null;
}

/** Nothing has the focus: it fell back to the page (its element was removed or disabled under it). */
export function focusLost(): boolean {
  const active = document.activeElement;
  return !active || active === document.body || (active as HTMLButtonElement).disabled === true;
}

/**
 * A form's drop-down as JupyterLab's own dialogs draw one (`Styling.wrapSelect`): the styled select in its
 * wrapper with the caret icon; a bare `select.jp-mod-styled` has no caret and reads as a text field.
 */
export function StyledSelect(props: React.SelectHTMLAttributes<HTMLSelectElement>): JSX.Element {
  return (
    <div className="jp-select-wrapper cp-Select">
      <select {...props} className="jp-mod-styled" />
      <caretDownEmptyIcon.react tag="span" stylesheet="select" right="8px" top="5px" width="18px" />
    </div>
  );
}
