/** Icons of the aiide UI (sidebar tab, cell toolbar); `jp-icon3` follows the theme. */
import { LabIcon } from '@jupyterlab/ui-components';

const icon = (name: string, path: string): LabIcon =>
  new LabIcon({
    name: `aiide:${name}`,
    svgstr:
      '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
      `<path class="jp-icon3" fill="#616161" d="${path}"/></svg>`
  });

export const chatIcon = icon(
  'chat',
  'M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2zm8 3-1.2 2.8L8 11l2.8 1.2L12 15l1.2-2.8L16 11l-2.8-1.2z'
);

export const explainIcon = icon(
  'explain',
  'M12 2a10 10 0 1 0 0 20 10 10 0 0 0 0-20zm1 15h-2v-2h2zm2.1-7.7-.9.9A3.4 3.4 0 0 0 13 13h-2v-.5a4 4 0 0 1 1.2-2.8l1.2-1.3A2 2 0 1 0 10 7H8a4 4 0 1 1 7.1 2.3z'
);

export const fixIcon = icon(
  'fix',
  'M22.7 19 13.6 9.9a6.4 6.4 0 0 0-1.5-6.9A6.6 6.6 0 0 0 4.7 1.7L9 6 6 9 1.6 4.7A6.5 6.5 0 0 0 2.9 12a6.4 6.4 0 0 0 6.9 1.5l9.1 9.1c.4.4 1 .4 1.4 0l2.3-2.3c.5-.4.5-1.1.1-1.3z'
);

export const generateIcon = icon(
  'generate',
  'M7.5 5.6 10 7 8.6 4.5 10 2 7.5 3.4 5 2l1.4 2.5L5 7zm12 9.8L17 14l1.4 2.5L17 19l2.5-1.4L22 19l-1.4-2.5L22 14zM22 2l-2.5 1.4L17 2l1.4 2.5L17 7l2.5-1.4L22 7l-1.4-2.5zm-7.6 5.3a1 1 0 0 0-1.4 0L1.3 19a1 1 0 0 0 0 1.4l2.3 2.3a1 1 0 0 0 1.4 0L16.7 11a1 1 0 0 0 0-1.4zm-1 5.5-2.1-2.1 2.4-2.4 2.1 2.1z'
);
