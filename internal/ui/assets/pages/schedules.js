// Placeholder (UI-CORE): UI-PAGES writes this page.
import { route, el } from '../app.js';

route('/schedules', (root) => { root.append(el('h1', null, 'Job schedules')); });
