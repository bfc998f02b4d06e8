// Placeholder (UI-CORE): UI-PAGES writes this page.
import { route, el } from '../app.js';

route('/applications', (root) => { root.append(el('h1', null, 'Applications')); });
