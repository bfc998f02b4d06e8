// Applications (UI-PAGES): the account's application packages and their
// versions (GET /applications, every page).
import { api, route, live, el } from '../app.js';
import { keyedRows, gridTable, row, get } from './jobs.js';

function renderApplications(root) {
  const t = gridTable('Applications', ['Application', 'Display name', 'Versions']);
  root.append(el('h1', {}, 'Applications'), t.wrap,
    el('p', { class: 'hint' }, 'Add packages with ', el('code', {}, 'kiln application'),
      '; pools and tasks reference them by id and version (applicationPackageReferences).'));
  async function load() {
    let items = [];
    let path = '/applications?maxresults=1000';
    for (let i = 0; path && i < 50; i++) {
      const r = await get(path);
      items = items.concat((r && r.value) || []);
      path = r && r['odata.nextLink'];
    }
    keyedRows(t.tbody, t.titles, items, (a) => a.id, (a) => row(t.titles,
      el('span', { class: 'kp-id' }, a.id),
      a.displayName || '',
      (a.versions || []).length
        ? el('ul', { class: 'kp-versions' }, ...(a.versions || []).map((v) => el('li', {}, el('code', {}, v))))
        : 'none'), 'No applications yet.');
  }
  live(load, 10000);
}

route('/applications', renderApplications);
