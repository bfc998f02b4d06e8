// Overview page (UI-CORE).
import { route, el } from '../app.js';

route('/overview', (root) => { root.append(el('h1', null, 'Overview')); });
