// Placeholder (UI-CORE): UI-PAGES writes this page.
import { route, el } from '../app.js';

route('/jobs', (root) => { root.append(el('h1', null, 'Jobs')); });
route('/jobs/:id', (root, p) => { root.append(el('h1', null, 'Job ' + p.id)); });
