/**
 * Lets node load JupyterLab packages that import their icons and styles (webpack does
 * that in the browser): `.svg` files load as their text, `.css` as nothing. Import it
 * before any such package.
 */
import { readFileSync } from 'node:fs';
import Module from 'node:module';

type Loader = (module: { exports: unknown }, filename: string) => void;
const extensions = (Module as unknown as { _extensions: Record<string, Loader> })._extensions;
extensions['.svg'] = (module, filename) => {
  module.exports = readFileSync(filename, 'utf8');
};
extensions['.css'] = module => {
  module.exports = {};
};

/**
 * happy-dom's `document` is not an instance of the global `Document` it installs; FAST
 * (JupyterLab's web components) then treats the document as an element and throws.
 */
{
  let proto: object | null = Object.getPrototypeOf(document) as object | null;
  while (proto && (proto as { constructor: { name: string } }).constructor.name !== 'Document') {
    proto = Object.getPrototypeOf(proto) as object | null;
  }
  if (proto) {
    (globalThis as Record<string, unknown>)['Document'] = (proto as { constructor: unknown }).constructor;
  }
}
