// Placeholder (UI-CORE): UI-PAGES writes this page.
import { route, el } from '../app.js';

route('/storage', (root) => { root.append(el('h1', null, 'Storage')); });
route('/storage/:container', (root, p) => { root.append(el('h1', null, 'Container ' + p.container)); });
