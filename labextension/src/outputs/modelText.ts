/**
 * Model text in a notebook (`%ai` answers): a MIME type of its own, rendered as Markdown
 * through the model-text sanitizer (the chat's rules, images behind a click), never as
 * trusted Markdown or HTML, whichever kernel sent it and whether or not the notebook is
 * trusted.
 */
import {
  MimeModel,
  markdownRendererFactory,
  type IRenderMime
} from '@jupyterlab/rendermime';
import { PanelLayout, Widget } from '@lumino/widgets';

import { MODEL_TEXT_MIME, bundleText } from './policy';
import { createModelTextSanitizer, wirePlaceholders } from './remote';

/** Before Markdown (60) and HTML (50): the kernel sends it with `text/plain` only. */
export const MODEL_TEXT_RANK = 40;

export class ModelTextRenderer extends Widget implements IRenderMime.IRenderer {
  constructor(options: IRenderMime.IRendererOptions) {
    super();
    this.addClass('aiide-ModelText');
    this.layout = new PanelLayout();
    this._markdown = markdownRendererFactory.createRenderer({
      ...options,
      mimeType: 'text/markdown',
      sanitizer: createModelTextSanitizer(options.sanitizer)
    });
    wirePlaceholders(this._markdown.node, options.resolver);
    (this.layout as PanelLayout).addWidget(this._markdown);
  }

  renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    return this._markdown.renderModel(
      new MimeModel({
        data: { 'text/markdown': bundleText(model.data, MODEL_TEXT_MIME) },
        trusted: false
      })
    );
  }

  private readonly _markdown: IRenderMime.IRenderer;
}

export const modelTextRendererFactory: IRenderMime.IRendererFactory = {
  // Safe: it renders untrusted data only, so it is chosen for untrusted notebooks too.
  safe: true,
  mimeTypes: [MODEL_TEXT_MIME],
  defaultRank: MODEL_TEXT_RANK,
  createRenderer: options => new ModelTextRenderer(options)
};
