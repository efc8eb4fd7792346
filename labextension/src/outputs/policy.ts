/**
 * Which outputs of a notebook may run in the lab's page, and how the rest are shown.
 *
 * A sandboxed kernel is untrusted code: what it prints is rendered by the lab, which holds
 * the user's cookie and XSRF token, so active output (scripts, event handlers, widgets,
 * unknown renderers) from it must not run in the lab's origin. This module is the
 * decision only (pure, no DOM), so that it can be tested on its own.
 */

/** The model text of `%ai` (Markdown), rendered through the model-text sanitizer. */
export const MODEL_TEXT_MIME = 'application/vnd.aiide.model-text+markdown';

/** The kernelspec aiide installs ("Python 3 (sandboxed)"). */
export const SANDBOXED_KERNEL = 'aiide-python';

/** The provisioner that starts kernels in the sandbox (kernelspec metadata). */
export const SANDBOX_PROVISIONER = 'aiide-sandbox';

/** The parts of a kernelspec the decision reads (the services' `ISpecModel`). */
export interface ISpecLike {
  readonly metadata?: { readonly [key: string]: unknown } | null;
}

/**
 * Whether a kernel of this spec runs in the sandbox: aiide's own kernelspec, any spec
 * started by aiide's provisioner, or a spec that says so (`metadata.aiide.sandboxed`).
 */
export function isSandboxedKernel(name: string | null | undefined, spec?: ISpecLike | null): boolean {
  if (!name) {
    return false;
  }
  if (name === SANDBOXED_KERNEL) {
    return true;
  }
  const metadata = spec?.metadata ?? {};
  const provisioner = metadata['kernel_provisioner'] as { provisioner_name?: unknown } | undefined;
  if (provisioner?.provisioner_name === SANDBOX_PROVISIONER) {
    return true;
  }
  const aiide = metadata['aiide'] as { sandboxed?: unknown } | undefined;
  return aiide?.sandboxed === true;
}

/**
 * How one output of a sandboxed kernel is shown:
 * - `as-is`: the renderer's trusted path is inert (bitmaps, SVG as an `<img>`, text, JSON,
 *   LaTeX, model text): rendered exactly as from any kernel;
 * - `sanitized`: rendered in place as an untrusted output (JupyterLab's sanitizer, no
 *   scripts or handlers) with remote resources behind a click;
 * - `frame`: run in an `<iframe sandbox="allow-scripts">` of an opaque origin;
 * - `text`: its plain-text form with a note (widgets: they need the lab's kernel
 *   connection, which an isolated frame cannot have).
 */
export type Treatment = 'as-is' | 'sanitized' | 'frame' | 'text';

/** Renderers whose trusted rendering runs nothing and loads nothing by itself. */
const INERT: ReadonlySet<string> = new Set([
  'text/plain',
  'application/vnd.jupyter.stdout',
  'application/vnd.jupyter.stderr',
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'image/bmp',
  // JupyterLab renders SVG as <img src="data:...">: no script, no remote load.
  'image/svg+xml',
  'text/latex',
  'application/json',
  MODEL_TEXT_MIME
]);

/** Rendered in place through the sanitizer (the renderer's untrusted path). */
const SANITIZED: ReadonlySet<string> = new Set(['text/html', 'text/markdown']);

/** Always run in a frame (their whole purpose is to run code). */
const FRAMED: ReadonlySet<string> = new Set(['application/javascript', 'text/javascript']);

/** Shown as text: a frame cannot reach the kernel's comms they need. */
const AS_TEXT: ReadonlySet<string> = new Set(['application/vnd.jupyter.widget-view+json']);

/**
 * HTML that would lose what it does to the sanitizer: scripts, handlers, embedded
 * documents, SVG, style sheets (other than the `<style scoped>` of pandas' tables, whose
 * table renders the same without it). Only chooses frame or in place: the in-place path
 * is sanitized whatever this says, so a miss costs function, never safety.
 */
export function hasActiveHtml(html: string): boolean {
  if (/<(script|iframe|object|embed|svg|math|form|link|meta|base|canvas)\b/i.test(html)) {
    return true;
  }
  if (/[\s"'/]on[a-z]+\s*=/i.test(html) || /javascript:/i.test(html)) {
    return true;
  }
  const styles = html.match(/<style\b[^>]*>/gi) ?? [];
  return styles.some(tag => !/^<style\s+scoped\s*>$/i.test(tag));
}

/**
 * The treatment of an output of MIME type `mimeType` (the one the output area chose from
 * the bundle) from a sandboxed kernel. `factorySafe` is the renderer factory's own claim
 * that it can render untrusted data.
 */
export function treatmentOf(mimeType: string, data: string, factorySafe: boolean): Treatment {
  if (INERT.has(mimeType)) {
    return 'as-is';
  }
  if (mimeType === 'text/html') {
    return hasActiveHtml(data) ? 'frame' : 'sanitized';
  }
  if (SANITIZED.has(mimeType)) {
    return 'sanitized';
  }
  if (FRAMED.has(mimeType)) {
    return 'frame';
  }
  if (AS_TEXT.has(mimeType)) {
    return 'text';
  }
  // Other renderers (plotly, vega, bokeh, pdf, extensions): those that declare they render
  // untrusted data get it marked untrusted; the others never run in the lab's page.
  return factorySafe ? 'sanitized' : 'frame';
}

/** The text of bundle entry `mimeType` (Jupyter allows a list of lines). */
export function bundleText(data: { readonly [key: string]: unknown }, mimeType: string): string {
  const value = data[mimeType];
  if (typeof value === 'string') {
    return value;
  }
  if (Array.isArray(value)) {
    return value.map(String).join('');
  }
  return value === undefined || value === null ? '' : JSON.stringify(value);
}
