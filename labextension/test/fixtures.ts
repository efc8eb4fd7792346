import type { IStatusResponse } from '../src/api/types';

/** The documented example answer of `GET /aiide/api/status`, as a fresh copy. */
export function exampleStatus(): IStatusResponse {
  return {
    version: '0.1.0',
    sandbox: {
      default_backend: 'bwrap',
      backends: {
        bwrap: { available: true, detail: 'bubblewrap 0.8.0', fix: null },
        docker: {
          available: false,
          detail: 'docker daemon not reachable',
          fix: 'sudo apt-get install docker.io'
        }
      },
      limits: { enforced: true, detail: 'cgroup v1 (cpu, memory, pids)' }
    },
    model: {
      configured: false,
      help:
        'No model key is configured. Set ANTHROPIC_API_KEY (or c.AiideExtension ... ) and restart JupyterLab.'
    }
  };
}
