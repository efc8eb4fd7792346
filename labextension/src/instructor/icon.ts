/** The dashboard's icon (a bar chart); `jp-icon3` follows the theme. */
import { LabIcon } from '@jupyterlab/ui-components';

export const dashboardIcon = new LabIcon({
  name: 'aiide:instructor-dashboard',
  svgstr:
    '<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 24 24">' +
    '<path class="jp-icon3" fill="#616161" d="M3 3h2v16h16v2H3zm4 10h3v5H7zm5-5h3v10h-3zm5-4h3v14h-3z"/></svg>'
});
