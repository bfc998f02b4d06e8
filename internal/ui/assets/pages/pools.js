// Pools pages (UI-CORE).
import { route, el } from '../app.js';

route('/pools', (root) => { root.append(el('h1', null, 'Pools')); });
route('/pools/:id', (root, p) => { root.append(el('h1', null, 'Pool ' + p.id)); });
