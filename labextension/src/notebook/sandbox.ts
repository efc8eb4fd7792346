/**
 * The sandbox as the default path, on the browser's side: the one-click switch of a
 * notebook to the sandboxed kernel that the chat offers when the agent was refused
 * (`kernel_not_sandboxed`), and the check that a cell the server asked to run goes to the
 * very kernel the server verified is sandboxed (`notebook_execute.kernel_id`).
 *
 * The server decides what is sandboxed (from its own kernel manager); these only make
 * the browser follow that decision.
 */

/** The kernelspec aiide installs: `Python 3 (sandboxed)`. */
export const SANDBOXED_KERNEL = 'aiide-python';

/** The error code of a tool refused because the notebook's kernel is not sandboxed. */
export const NOT_SANDBOXED = 'kernel_not_sandboxed';

/** The part of a notebook's session context the switch needs. */
export interface ISwitchableSession {
  changeKernel(options: { name: string }): Promise<unknown>;
}

/** Switch a notebook's session to the sandboxed kernel (its old kernel is shut down). */
export async function switchToSandbox(session: ISwitchableSession): Promise<void> {
  await session.changeKernel({ name: SANDBOXED_KERNEL });
}

/**
 * Why a cell must not run in `actual` when the server checked `expected` (`undefined`:
 * a server that does not say; run as before), or null when it may run.
 */
export function kernelMismatch(
  expected: string | null | undefined,
  actual: string | null
): string | null {
  if (expected === undefined || expected === actual) {
    return null;
  }
  return (
    "the notebook's kernel changed since the server checked it is sandboxed: ask again"
  );
}
