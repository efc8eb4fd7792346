/**
 * Wire types of the aiide REST API (`/aiide/api/...`), as the server sends them.
 *
 * Kept free of JupyterLab imports so the pure logic and its tests can use them.
 */

/** One sandbox backend (bwrap, docker) as probed by the server. */
export interface IBackendStatus {
  available: boolean;
  /** What was found, e.g. "bubblewrap 0.8.0", or why it is unusable. */
  detail: string;
  /** A command or hint that makes the backend usable, when it is not. */
  fix: string | null;
}

/** Whether resource limits (memory, cpu, pids) can be enforced on kernels. */
export interface ILimitsStatus {
  enforced: boolean;
  detail: string;
}

export interface ISandboxStatus {
  default_backend: string;
  backends: Record<string, IBackendStatus>;
  limits: ILimitsStatus;
}

export interface IModelStatus {
  configured: boolean;
  /** Where models come from when the server holds no key (e.g. the course's key broker). */
  source?: string;
  /** How to configure a model; null when one is configured. */
  help: string | null;
  /** The models the agent can use for this user (absent when the server has no agent). */
  models?: string[];
}

/** `GET /aiide/api/status` */
export interface IStatusResponse {
  version: string;
  sandbox: ISandboxStatus;
  model: IModelStatus;
}

/** Something the server recorded about a kernel, e.g. why it died. */
export interface IKernelEvent {
  /** ISO 8601 timestamp. */
  time: string;
  kind: string;
  message: string;
}

/** `GET /aiide/api/kernels/<kernel_id>/events` */
export interface IKernelEventsResponse {
  kernel_id: string;
  events: IKernelEvent[];
}
