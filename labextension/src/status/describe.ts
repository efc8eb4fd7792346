/**
 * Turns a server status into what the user sees: the status-bar text, its tooltip,
 * machine-readable flags, and the notifications to raise. Pure, so it is unit-tested.
 */
import type { IStatusResponse } from '../api/types';

/** Something worth marking on the status item; none means all is well. */
export type StatusFlag =
  | 'loading'
  | 'unreachable'
  | 'no-sandbox'
  | 'no-limits'
  | 'no-model'
  | 'quota-low'
  | 'quota';

export type NoticeType = 'warning' | 'error';

/** A notification the status plugin keeps on screen until it no longer applies. */
export interface INotice {
  /** Stable identity: the same key is never shown twice at once. */
  key: string;
  type: NoticeType;
  message: string;
}

export interface IStatusView {
  text: string;
  title: string;
  flags: StatusFlag[];
  notices: INotice[];
}

export interface IDescribeOptions {
  /** Users who run aiide only for its sandbox can silence the model warning. */
  showModelWarning: boolean;
}

export const DEFAULT_DESCRIBE_OPTIONS: IDescribeOptions = { showModelWarning: true };

const MODEL_HELP_FALLBACK =
  'No model key is configured: set ANTHROPIC_API_KEY and restart JupyterLab.';

export const LOADING_VIEW: IStatusView = {
  text: 'aiide',
  title: 'aiide: asking the server for its status…',
  flags: ['loading'],
  notices: []
};

/** The `data-aiide-status` value: space-separated flags, or "ok". */
export function flagsAttribute(flags: readonly StatusFlag[]): string {
  return flags.length > 0 ? flags.join(' ') : 'ok';
}

function notice(kind: string, type: NoticeType, message: string): INotice {
  return { key: `${kind}\u0000${message}`, type, message };
}

/** The message shown when the default sandbox backend cannot run kernels. */
export function sandboxUnavailableMessage(status: IStatusResponse): string {
  const name = status.sandbox.default_backend;
  const backend = status.sandbox.backends[name];
  if (!backend) {
    return `aiide: the sandbox backend "${name}" is not known to the server, so sandboxed kernels cannot start.`;
  }
  const fix = backend.fix ? ` To fix: ${backend.fix}` : '';
  return `aiide: the sandbox backend "${name}" is not available (${backend.detail}), so sandboxed kernels cannot start.${fix}`;
}

export function describeStatus(
  status: IStatusResponse,
  options: IDescribeOptions = DEFAULT_DESCRIBE_OPTIONS
): IStatusView {
  const { sandbox, model } = status;
  const name = sandbox.default_backend;
  const backend = sandbox.backends[name];
  const sandboxOk = backend?.available === true;

  const flags: StatusFlag[] = [];
  const notices: INotice[] = [];
  const parts: string[] = [];

  if (sandboxOk) {
    parts.push(sandbox.limits.enforced ? 'Sandbox on' : 'Sandbox on, no limits');
    if (!sandbox.limits.enforced) {
      flags.push('no-limits');
    }
  } else {
    parts.push('No sandbox');
    flags.push('no-sandbox');
    notices.push(notice('sandbox', 'error', sandboxUnavailableMessage(status)));
  }
  if (!model.configured) {
    parts.push('no model');
    flags.push('no-model');
    if (options.showModelWarning) {
      notices.push(notice('model', 'warning', model.help ?? MODEL_HELP_FALLBACK));
    }
  }

  const lines = [`aiide ${status.version}`, SANDBOX_MEANS];
  lines.push(
    backend
      ? `Sandbox: ${backendName(name)}: ${backend.available ? 'available' : 'NOT available'} (${backend.detail})`
      : `Sandbox: ${name}: unknown backend`
  );
  for (const [other, s] of Object.entries(sandbox.backends)) {
    if (other !== name) {
      lines.push(`  also ${backendName(other)}: ${s.available ? 'available' : 'not available'} (${s.detail})`);
    }
  }
  lines.push(
    `Limits: ${sandbox.limits.enforced ? 'enforced' : 'NOT enforced'} (${sandbox.limits.detail})`
  );
  lines.push(`Model: ${describeModel(model)}`);
  lines.push('Click to refresh.');

  return { text: parts.join(' · '), title: lines.join('\n'), flags, notices };
}

/** What "sandboxed" means, for the item's tooltip (the launcher's card says no more). */
export const SANDBOX_MEANS =
  'Notebooks on "Python 3 (sandboxed)" run code with no network and no access to files ' +
  'outside their folder, within memory and process limits; the assistant runs its code there too.';

const BACKEND_NAMES: Record<string, string> = {
  bwrap: 'bubblewrap (bwrap)',
  docker: 'Docker containers (docker)'
};

function backendName(name: string): string {
  return BACKEND_NAMES[name] ?? name;
}

/** The tooltip's model line: which models the assistant uses, and through what. */
function describeModel(model: IStatusResponse['model']): string {
  if (!model.configured) {
    return 'not configured';
  }
  const names = model.models && model.models.length > 0 ? model.models.join(', ') : '';
  if (model.source) {
    return names ? `${names} through ${model.source}` : `through ${model.source}`;
  }
  return names || 'configured';
}

/** The view when the server extension did not answer. */
export function describeUnreachable(reason: string): IStatusView {
  const message =
    `aiide could not get its status from the server (${reason}). ` +
    'Check that the aiide server extension is enabled: jupyter server extension list';
  return {
    text: 'aiide offline',
    title: `${message}\nClick to retry.`,
    flags: ['unreachable'],
    notices: [notice('unreachable', 'warning', message)]
  };
}

export interface INoticePlan {
  show: INotice[];
  dismiss: string[];
}

/**
 * Which notices to raise and which to take down, given the keys on screen now.
 * A notice that still applies is left alone, so refreshing never stacks duplicates.
 */
export function planNotices(
  shown: Iterable<string>,
  wanted: readonly INotice[]
): INoticePlan {
  const current = new Set(shown);
  const wantedKeys = new Set(wanted.map(n => n.key));
  const seen = new Set<string>();
  const show: INotice[] = [];
  for (const n of wanted) {
    if (!current.has(n.key) && !seen.has(n.key)) {
      show.push(n);
    }
    seen.add(n.key);
  }
  const dismiss = [...current].filter(key => !wantedKeys.has(key));
  return { show, dismiss };
}
