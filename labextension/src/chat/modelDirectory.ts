/**
 * Which models this user may pick (`GET agent/models`), and whether any is configured
 * at all (then the chat shows a setup card instead of a silent failure).
 */
import type { ServerConnection } from '@jupyterlab/services';
import { Signal, type ISignal } from '@lumino/signaling';

import { describeFailure, type IFailure } from '../api/failure';
import { fetchModels } from '../api/models';
import type { IModelInfo } from '../api/protocol';
import { fetchStatus } from '../api/status';

export class ModelDirectory {
  constructor(settings: ServerConnection.ISettings) {
    this._settings = settings;
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  get models(): readonly IModelInfo[] {
    return this._models;
  }

  get failure(): IFailure | null {
    return this._failure;
  }

  /** True when the server has no model configured. */
  get noModel(): boolean {
    return this._noModel;
  }

  /** How the server says to configure a model. */
  get setupHelp(): string | null {
    return this._help;
  }

  async refresh(): Promise<void> {
    const [models, status] = await Promise.allSettled([
      fetchModels(this._settings),
      fetchStatus(this._settings)
    ]);
    if (models.status === 'fulfilled') {
      this._models = models.value;
      this._failure = null;
    } else {
      this._models = [];
      this._failure = describeFailure(models.reason);
    }
    const configured = status.status === 'fulfilled' ? status.value.model.configured : null;
    this._help = status.status === 'fulfilled' ? status.value.model.help : null;
    this._noModel =
      configured === false ||
      this._failure?.kind === 'no_model' ||
      (models.status === 'fulfilled' && models.value.length === 0);
    this._changed.emit();
  }

  private readonly _settings: ServerConnection.ISettings;
  private _models: IModelInfo[] = [];
  private _failure: IFailure | null = null;
  private _noModel = false;
  private _help: string | null = null;
  private readonly _changed = new Signal<this, void>(this);
}
