/**
 * A notebook's rendermime, guarded: while the notebook's kernel is sandboxed, each output
 * is rendered by its treatment (see `policy.ts`) instead of as trusted. Markdown cells and
 * other non-output renders through the same registry are left as they were.
 */
import {
  MimeModel,
  OutputModel,
  type IRenderMime,
  type IRenderMimeRegistry
} from '@jupyterlab/rendermime';
import { PanelLayout, Widget } from '@lumino/widgets';

import { FramedOutput } from './frame';
import { bundleText, treatmentOf, type Treatment } from './policy';
import { createOutputSanitizer, wirePlaceholders } from './remote';

const GUARDED = Symbol('aiide-guarded');

/** Why an output is shown as text (a widget from a sandboxed kernel). */
export const WIDGET_NOTE =
  'Interactive widgets from a sandboxed kernel are not displayed: they would run with ' +
  "the lab's access. Their text form:";

/**
 * Replaces `rm.createRenderer` (and `clone`, so clones stay guarded) on this instance:
 * while `sandboxed()` holds, renderers are `GuardedRenderer`s.
 *
 * The registry's `sanitizer` is replaced too. JupyterLab uses it outside any renderer: a
 * code cell parses its HTML outputs for table-of-contents headings by setting the
 * sanitized HTML as the `innerHTML` of a detached `<div>` of the lab's page, where an
 * `<img>` starts loading at once, even for an output shown in a frame. While the kernel
 * is sandboxed that sanitizer puts remote resources behind placeholders as well. The
 * renderers of everything else (Markdown cells: the author's own text) keep the
 * registry's original sanitizer.
 */
export function guardRendermime(rm: IRenderMimeRegistry, sandboxed: () => boolean): void {
  const target = rm as IRenderMimeRegistry & { [GUARDED]?: true };
  if (target[GUARDED]) {
    return;
  }
  target[GUARDED] = true;
  const base = rm.sanitizer;
  const sanitizer = createOutputSanitizer(base);
  const clone = rm.clone.bind(rm);
  (rm as { sanitizer: IRenderMime.ISanitizer }).sanitizer = {
    sanitize: (dirty: string, options?: IRenderMime.ISanitizerOptions): string =>
      (sandboxed() ? sanitizer : base).sanitize(dirty, options),
    getAutolink: () => base.getAutolink?.() ?? true,
    allowNamedProperties: base.allowNamedProperties,
    allowCommandLinker: base.allowCommandLinker
  };
  const make = (mimeType: string, using: IRenderMime.ISanitizer): IRenderMime.IRenderer => {
    const factory = rm.getFactory(mimeType);
    if (!factory) {
      throw new Error(`No factory for mime type: '${mimeType}'`);
    }
    return factory.createRenderer({
      mimeType,
      resolver: rm.resolver,
      sanitizer: using,
      linkHandler: rm.linkHandler,
      latexTypesetter: rm.latexTypesetter,
      markdownParser: rm.markdownParser,
      // The registry's interface has no translator (the class has): as JupyterLab's.
      translator: (rm as { translator?: IRenderMime.IRendererOptions['translator'] }).translator
    });
  };
  rm.createRenderer = (mimeType: string): IRenderMime.IRenderer => {
    const renderer = make(mimeType, base);
    if (!sandboxed()) {
      return renderer;
    }
    const factory = rm.getFactory(mimeType);
    return new GuardedRenderer(
      mimeType,
      renderer,
      factory?.safe ?? false,
      () => make(mimeType, sanitizer),
      rm.resolver
    );
  };
  rm.clone = (options?: IRenderMimeRegistry.ICloneOptions): IRenderMimeRegistry => {
    const copy = clone({ ...options, sanitizer: options?.sanitizer ?? base });
    guardRendermime(copy, sandboxed);
    return copy;
  };
}

/** Renders one output of a sandboxed kernel by its treatment. */
export class GuardedRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(
    mimeType: string,
    plain: IRenderMime.IRenderer,
    factorySafe: boolean,
    createSanitized: () => IRenderMime.IRenderer,
    resolver: IRenderMime.IResolver | null
  ) {
    super();
    this.layout = new PanelLayout();
    this.addClass('aiide-GuardedOutput');
    this._mimeType = mimeType;
    this._plain = plain;
    this._factorySafe = factorySafe;
    this._createSanitized = createSanitized;
    this._resolver = resolver;
  }

  /** The treatment of the last rendered model (`as-is` for non-outputs), for tests. */
  get treatment(): Treatment | null {
    return this._treatment;
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    // Markdown cells render through the notebook's registry too: only outputs are guarded.
    const treatment: Treatment =
      model instanceof OutputModel
        ? treatmentOf(this._mimeType, bundleText(model.data, this._mimeType), this._factorySafe)
        : 'as-is';
    this._treatment = treatment;
    this.node.dataset['aiideTreatment'] = treatment;
    switch (treatment) {
      case 'as-is':
        this._show(this._plain);
        return this._plain.renderModel(model);
      case 'sanitized': {
        this._sanitized ??= this._createSanitized();
        if (!this._wired) {
          wirePlaceholders(this._sanitized.node, this._resolver);
          this._wired = true;
        }
        this._show(this._sanitized);
        return this._sanitized.renderModel(
          new MimeModel({ data: model.data, metadata: model.metadata, trusted: false })
        );
      }
      case 'frame': {
        this._frame ??= new FramedOutput(this._mimeType);
        this._show(this._frame);
        return this._frame.renderModel(model);
      }
      case 'text': {
        const text = new Widget();
        text.addClass('jp-RenderedText');
        const note = document.createElement('div');
        note.className = 'aiide-GuardedOutput-note';
        note.textContent = WIDGET_NOTE;
        const pre = document.createElement('pre');
        pre.textContent = bundleText(model.data, 'text/plain');
        text.node.append(note, pre);
        this._show(text);
        return;
      }
    }
  }

  private _show(widget: Widget): void {
    const layout = this.layout as PanelLayout;
    for (const shown of [...layout.widgets]) {
      if (shown !== widget) {
        layout.removeWidget(shown);
        if (shown !== this._plain && shown !== this._sanitized && shown !== this._frame) {
          shown.dispose();
        }
      }
    }
    if (!layout.widgets.includes(widget)) {
      layout.addWidget(widget);
    }
  }

  override dispose(): void {
    if (this.isDisposed) {
      return;
    }
    for (const widget of [this._plain, this._sanitized, this._frame]) {
      widget?.dispose();
    }
    super.dispose();
  }

  private readonly _mimeType: string;
  private readonly _plain: IRenderMime.IRenderer;
  private readonly _factorySafe: boolean;
  private readonly _createSanitized: () => IRenderMime.IRenderer;
  private readonly _resolver: IRenderMime.IResolver | null;
  private _sanitized: IRenderMime.IRenderer | null = null;
  private _frame: FramedOutput | null = null;
  private _wired = false;
  private _treatment: Treatment | null = null;
}
