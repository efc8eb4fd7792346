/** Client for `GET /aiide/api/agent/models`: the models this user may pick. */
import type { ServerConnection } from '@jupyterlab/services';

import { field, isString, listField, objectBody } from './json';
import type { IModelInfo } from './protocol';
import { requestAPI } from './request';

const WHAT = 'models';
const isStringList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every(s => typeof s === 'string');

export function parseModels(data: unknown): IModelInfo[] {
  return listField(objectBody(data, WHAT), 'models', WHAT, '$', (raw, path) => ({
    name: field(raw, 'name', isString, WHAT, path),
    provider: field(raw, 'provider', isString, WHAT, path),
    capabilities: field(raw, 'capabilities', isStringList, WHAT, path)
  }));
}

export async function fetchModels(settings: ServerConnection.ISettings): Promise<IModelInfo[]> {
  return parseModels(await requestAPI('agent/models', settings));
}
