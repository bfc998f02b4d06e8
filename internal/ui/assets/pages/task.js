// Placeholder (UI-CORE): UI-PAGES writes this page.
import { route, el } from '../app.js';

route('/jobs/:id/tasks/:taskId', (root, p) => { root.append(el('h1', null, 'Task ' + p.taskId), el('pre', { 'data-testid': 'stdout' })); });
