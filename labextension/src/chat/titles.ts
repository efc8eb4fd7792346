/**
 * Titles chosen before the server stored renames (`PATCH agent/conversations/{id}`):
 * they lived in JupyterLab's state database and still override the server's title in
 * this workspace until the conversation is renamed again (then the server's title is
 * the only one, and the old one is forgotten). New renames never land here.
 */
import type { IStateDB } from '@jupyterlab/statedb';
import type { ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Signal, type ISignal } from '@lumino/signaling';

const KEY = 'aiide:chat-titles';

export class TitleStore {
  constructor(state: IStateDB | null) {
    this._state = state;
    if (state) {
      void state.fetch(KEY).then(
        value => {
          if (value && typeof value === 'object' && !Array.isArray(value)) {
            for (const [id, title] of Object.entries(value)) {
              if (typeof title === 'string') {
                this._titles.set(id, title);
              }
            }
            this._changed.emit();
          }
        },
        () => undefined
      );
    }
  }

  get changed(): ISignal<this, void> {
    return this._changed;
  }

  title(id: string, fallback: string): string {
    return this._titles.get(id) ?? fallback;
  }

  forget(id: string): void {
    if (this._titles.delete(id)) {
      this._save();
      this._changed.emit(); // the header and list show the server's title now
    }
  }

  private _save(): void {
    const value: ReadonlyPartialJSONObject = Object.fromEntries(this._titles);
    void this._state?.save(KEY, value).catch(() => undefined);
  }

  private readonly _state: IStateDB | null;
  private readonly _titles = new Map<string, string>();
  private readonly _changed = new Signal<this, void>(this);
}
