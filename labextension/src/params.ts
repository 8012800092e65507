/**
 * Pipeline parameters in the panel's form: the JSON schema rjsf renders (typed inputs with the
 * notebook's defaults) and the typed value sent for each. Pure: unit-tested without JupyterLab.
 */
import type { RJSFSchema, UiSchema } from '@rjsf/utils';
import { ApiError, IParameter } from './api';

/** A typed parameter value from the form: list/dict parameters are typed as JSON text. */
export function parameterValue(parameter: IParameter, value: unknown): unknown {
  if ((parameter.type === 'list' || parameter.type === 'dict') && typeof value === 'string') {
    let parsed: unknown;
    try {
      parsed = JSON.parse(value);
    } catch {
      throw new ApiError(400, {
        message: `parameter '${parameter.name}' is not valid JSON`,
        field: parameter.name,
        hint: parameter.type === 'list' ? 'e.g. [1, 2, 3]' : 'e.g. {"key": "value"}'
      });
    }
    const isList = Array.isArray(parsed);
    if (
      parameter.type === 'list' ? !isList : isList || typeof parsed !== 'object' || parsed === null
    ) {
      throw new ApiError(400, {
        message: `parameter '${parameter.name}' must be a JSON ${parameter.type === 'list' ? 'list' : 'object'}`,
        field: parameter.name
      });
    }
    return parsed;
  }
  return value;
}

/** The rjsf schema of the parameters cell: typed inputs with the notebook's defaults. */
export function parametersSchema(parameters: IParameter[]): {
  schema: RJSFSchema;
  uiSchema: UiSchema;
} {
  const properties: Record<string, RJSFSchema> = {};
  const uiSchema: UiSchema = {};
  for (const p of parameters) {
    const title = p.name;
    if (p.type === 'int') {
      properties[p.name] = { type: 'integer', title, default: p.default as number };
    } else if (p.type === 'float') {
      properties[p.name] = { type: 'number', title, default: p.default as number };
    } else if (p.type === 'bool') {
      properties[p.name] = { type: 'boolean', title, default: p.default as boolean };
    } else if (p.type === 'str') {
      properties[p.name] = { type: 'string', title, default: p.default as string };
    } else {
      properties[p.name] = {
        type: 'string',
        title,
        default: JSON.stringify(p.default),
        description: `JSON ${p.type === 'list' ? 'list' : 'object'}`
      };
      uiSchema[p.name] = { 'ui:widget': 'textarea', 'ui:options': { rows: 2 } };
    }
  }
  return { schema: { type: 'object', properties }, uiSchema };
}
