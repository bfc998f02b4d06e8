// Storage browser (UI-PAGES): the account's Kiln storage containers and
// the blobs of a container under a folder ("/"-delimited prefix, in the
// hash: #/storage/<container>?prefix=a/b/) with its subfolders to open,
// upload, download and delete,
// through /ui/storage (signed by the server). Reads are plain GETs, so
// Download links stream with a plain click; writes carry X-Kiln-UI: 1.
import { route, live, el, toast, fmtTime, fmtBytes, storageURL } from '../app.js';
import { confirmButton, keyedRows, gridTable, row, cursorPager } from './jobs.js';

const enc = encodeURIComponent;

// storageError turns a failed answer (Azure Storage XML error, or the
// dashboard's JSON {"error"}) into an Error with its message.
function storageError(status, statusText, text) {
  let msg = '';
  try { msg = JSON.parse(text).error || ''; } catch {
    const doc = new DOMParser().parseFromString(text || '<x/>', 'application/xml');
    const m = doc.querySelector('Error > Message');
    if (m) msg = m.textContent.split('\n')[0].trim();
  }
  const e = new Error(msg || `${status} ${statusText}`);
  e.status = status;
  if (status === 401) location.hash = '#/signin';
  return e;
}

async function xmlGet(url) {
  const res = await fetch(url, { credentials: 'same-origin', cache: 'no-store', headers: { 'X-Kiln-UI': '1' } });
  const text = await res.text();
  if (!res.ok) throw storageError(res.status, res.statusText, text);
  return new DOMParser().parseFromString(text, 'application/xml');
}

async function write(method, url) {
  const res = await fetch(url, { method, credentials: 'same-origin', headers: { 'X-Kiln-UI': '1' } });
  if (!res.ok) throw storageError(res.status, res.statusText, await res.text().catch(() => ''));
}

// Children by tag name (XML from the storage service, no namespaces).
const kids = (node, name) => Array.from(node.children).filter((c) => c.tagName === name);
const kid = (node, name) => kids(node, name)[0];
const text = (node, ...path) => {
  let n = node;
  for (const p of path) { n = n && kid(n, p); }
  return n ? n.textContent : '';
};

// listAll follows NextMarker through the pages of a list (bounded).
async function listAll(url, params) {
  const docs = [];
  let marker = '';
  for (let i = 0; i < 50; i++) {
    const q = new URLSearchParams(params);
    if (marker) q.set('marker', marker);
    const doc = await xmlGet(`${url}?${q}`);
    docs.push(doc.documentElement);
    marker = text(doc.documentElement, 'NextMarker');
    if (!marker) break;
  }
  return docs;
}

// upload PUTs a file as a block blob (XMLHttpRequest, for its progress).
function upload(url, file, onProgress) {
  return new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('PUT', url);
    x.setRequestHeader('X-Kiln-UI', '1');
    x.setRequestHeader('x-ms-blob-type', 'BlockBlob');
    x.setRequestHeader('Content-Type', file.type || 'application/octet-stream');
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(Math.floor((e.loaded * 100) / e.total)); };
    x.onload = () => (x.status >= 200 && x.status < 300 ? resolve() : reject(storageError(x.status, x.statusText, x.responseText)));
    x.onerror = () => reject(new Error('The upload failed (network error).'));
    x.send(file);
  });
}

const lab = (textLabel, input) => el('label', { class: 'field' }, el('span', { class: 'field-label' }, textLabel), input);

function renderContainers(root) {
  const t = gridTable('Containers', ['Container', 'Last modified', 'Actions']);
  const nameInput = el('input', { name: 'container', required: true, autocomplete: 'off', spellcheck: 'false', pattern: '[a-z0-9][a-z0-9\\-]{1,61}[a-z0-9]', title: '3 to 63 lowercase letters, digits and hyphens' });
  const form = el('form', { class: 'toolbar', 'aria-label': 'Create container' },
    lab('New container name', nameInput), el('button', { type: 'submit' }, 'Create container'));
  root.append(el('h1', {}, 'Storage'), form, t.wrap);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    try {
      await write('PUT', `${storageURL(name)}?restype=container`);
      toast(`Container ${name} created`);
      nameInput.value = '';
      handle.refresh();
    } catch (e) { toast(e.message, 'error'); }
  });
  async function load() {
    const docs = await listAll('/ui/storage/', { comp: 'list' });
    const items = docs.flatMap((d) => kids(kid(d, 'Containers') || d, 'Container').map((c) => ({
      name: text(c, 'Name'), modified: text(c, 'Properties', 'Last-Modified'),
    })));
    keyedRows(t.tbody, t.titles, items, (c) => c.name, (c) => row(t.titles,
      el('a', { href: `#/storage/${enc(c.name)}` }, c.name),
      fmtTime(c.modified),
      confirmButton('Delete', `Delete container ${c.name} and all its blobs?`, async () => {
        await write('DELETE', `${storageURL(c.name)}?restype=container`);
        toast(`Container ${c.name} deleted`);
        handle.refresh();
      }, { 'aria-label': `Delete container ${c.name}` })), 'No containers yet.');
  }
  const handle = live(load, 5000);
}

function folderHref(container, prefix) {
  return `#/storage/${enc(container)}` + (prefix ? `?prefix=${enc(prefix)}` : '');
}

// renderContainer shows the blobs of a container under a folder (prefix):
// the folder's subfolders as links to open, then every blob in the folder
// and below it, by name, a page at a time (marker paging), with Download
// and Delete; uploads go into the folder.
function renderContainer(root, params, query) {
  const container = params.container;
  let prefix = query.get('prefix') || '';
  if (prefix && !prefix.endsWith('/')) prefix += '/';
  const parts = prefix.split('/').filter(Boolean);
  const crumbs = el('nav', { class: 'kp-crumbs', 'aria-label': 'Folder' },
    el('a', { href: '#/storage' }, 'Storage'), ' / ',
    parts.length ? el('a', { href: folderHref(container, '') }, container) : el('span', { 'aria-current': 'page' }, container),
    ...parts.flatMap((p, i) => [' / ', i === parts.length - 1
      ? el('span', { 'aria-current': 'page' }, p)
      : el('a', { href: folderHref(container, parts.slice(0, i + 1).join('/') + '/') }, p)]));
  const folders = el('ul', { class: 'kp-folders', 'aria-label': 'Folders' });
  const t = gridTable(`Blobs in ${container}/${prefix}`, ['Name', 'Size', 'Last modified', 'Actions']);
  const fileInput = el('input', { type: 'file', multiple: true, name: 'files' });
  const progress = el('span', { class: 'kp-upload-progress', 'aria-live': 'polite' });
  const form = el('form', { class: 'toolbar', 'aria-label': 'Upload files' },
    lab(prefix ? `Choose files (into ${prefix})` : 'Choose files', fileInput),
    el('button', { type: 'submit' }, 'Upload'), progress);
  const pager = cursorPager('Blob pages', () => handle.refresh());
  root.append(crumbs, el('h1', {}, 'Container ', el('span', { class: 'kp-id' }, container)), form, folders, t.wrap, pager.el);

  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const files = Array.from(fileInput.files || []);
    if (!files.length) { toast('Choose a file to upload first.', 'error'); fileInput.focus(); return; }
    for (const f of files) {
      const name = prefix + f.name;
      try {
        await upload(storageURL(container, name), f, (pct) => { progress.textContent = `${f.name}: ${pct}%`; });
        toast(`Uploaded ${name}`);
      } catch (e) { toast(`${name}: ${e.message}`, 'error'); }
    }
    progress.textContent = '';
    fileInput.value = '';
    handle.refresh();
  });

  async function loadFolders() {
    const q = new URLSearchParams({ restype: 'container', comp: 'list', delimiter: '/', prefix, maxresults: '1000' });
    const doc = (await xmlGet(`${storageURL(container)}?${q}`)).documentElement;
    const names = kids(kid(doc, 'Blobs') || doc, 'BlobPrefix').map((p) => text(p, 'Name'));
    const sig = JSON.stringify(names);
    if (folders.dataset.sig === sig) return;
    folders.dataset.sig = sig;
    const items = [];
    if (prefix) items.push(el('li', {}, el('a', { href: folderHref(container, parts.slice(0, -1).map((p) => p + '/').join('')) }, '.. (parent folder)')));
    for (const n of names) {
      const label = n.slice(prefix.length);
      items.push(el('li', {}, el('a', { href: folderHref(container, n), 'aria-label': `Folder ${label}`, class: 'kp-folder' }, label)));
    }
    folders.replaceChildren(...(items.length ? [el('li', { class: 'kp-folders-label', 'aria-hidden': 'true' }, 'Folders:'), ...items] : []));
    folders.hidden = items.length === 0;
  }

  function currentQuery() {
    const q = new URLSearchParams({ restype: 'container', comp: 'list', prefix, maxresults: '500' });
    if (pager.token) q.set('marker', pager.token);
    return q.toString();
  }
  async function load() {
    await loadFolders();
    const q = currentQuery();
    const doc = (await xmlGet(`${storageURL(container)}?${q}`)).documentElement;
    if (q !== currentQuery()) return; // paged meanwhile: a newer load follows
    const blobs = kids(kid(doc, 'Blobs') || doc, 'Blob').map((b) => ({
      name: text(b, 'Name'), size: text(b, 'Properties', 'Content-Length'), modified: text(b, 'Properties', 'Last-Modified'),
    }));
    keyedRows(t.tbody, t.titles, blobs, (r) => r.name, (r) => {
      const url = storageURL(container, r.name);
      return row(t.titles,
        el('span', { class: 'kp-id' }, r.name.slice(prefix.length)),
        fmtBytes(r.size),
        fmtTime(r.modified),
        el('span', { class: 'kp-inline' },
          el('a', { href: url, download: r.name.split('/').pop(), class: 'button secondary', 'aria-label': `Download ${r.name}` }, 'Download'),
          confirmButton('Delete', `Delete blob ${r.name}?`, async () => {
            await write('DELETE', url);
            toast(`Deleted ${r.name}`);
            handle.refresh();
          }, { 'aria-label': `Delete blob ${r.name}` })));
    }, prefix ? 'This folder is empty.' : 'This container is empty.');
    // The storage list's NextMarker plays the part of odata.nextLink.
    const next = text(doc, 'NextMarker');
    pager.update({ 'odata.nextLink': next ? `${location.origin}/?$skiptoken=${encodeURIComponent(next)}` : '' }, blobs.length);
  }
  const handle = live(load, 5000);
}

route('/storage', renderContainers);
route('/storage/:container', renderContainer);
