// The console's pages. Every action is a same-origin admin API call: what a user may see or do,
// and every error, is the API's. Text goes into the DOM as text (el(), never innerHTML), so a
// name like <script> is shown, not run; the CSP allows no inline script besides.

const main = document.getElementById('main');
const statusLine = document.getElementById('status');
const PAGE = 100; // tree children and list rows fetched per request
let csrf = '';
let signedInAs = '';

// --- DOM and API helpers ----------------------------------------------------------------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'text') node.textContent = value;
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && body.error) || {};
    super(detail.message || `the admin API answered ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

async function api(method, path, body) {
  const headers = { Accept: 'application/json' };
  if (method !== 'GET') headers['X-Pdp-Csrf'] = csrf;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const answer = await fetch(path, {
    method,
    headers,
    credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (answer.status === 401) {
    window.location.assign('/console/signin');
    throw new ApiError(401, null);
  }
  const data = await answer.json().catch(() => null);
  if (!answer.ok) throw new ApiError(answer.status, data);
  return { status: answer.status, data };
}

function say(message, kind = 'notice') {
  statusLine.replaceChildren(el('p', { class: kind }, message));
}

function problem(error) {
  // the API's own sentence, with what it names (field, permission, checks)
  const box = el('div', { class: 'error', role: 'alert' }, el('p', {}, error.message));
  const detail = error.detail || {};
  if (detail.permission) box.append(el('p', {}, `Needed: ${detail.permission}`));
  if (Array.isArray(detail.checks)) box.append(checkList(detail.checks));
  return box;
}

function badge(word, tone) {
  return el('span', { class: `badge ${tone}` }, word);
}

const STATE_TONE = {
  active: 'ok', completed: 'ok', validated: 'ok', acknowledged: 'ok', ok: 'ok',
  running: 'warn', queued: 'warn', pending: 'warn', syncing: 'warn',
  failed: 'bad', missing: 'bad', cancelled: 'muted', inactive: 'muted', disabled: 'muted',
};

function stateBadge(word) {
  return badge(word || 'unknown', STATE_TONE[word] || 'muted');
}

// one formatter for every date (toLocaleString builds one per call: 100 of them on a page of jobs)
const DATES = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'numeric',
  day: 'numeric', hour: 'numeric', minute: '2-digit', second: '2-digit' });

function when(text) {
  if (!text) return '—';
  const date = new Date(text);
  return Number.isNaN(date.getTime()) ? String(text) : DATES.format(date);
}

function apiPath(path) {
  // the API's object paths are URL paths already (each segment percent-encoded)
  return path.split('/').filter(Boolean).join('/');
}

function pageLink(href, text) {
  return el('a', { href }, text);
}

function field(label, input, help) {
  const id = input.id || `f-${Math.random().toString(36).slice(2)}`;
  input.id = id;
  return el('div', { class: 'field' }, el('label', { for: id }, label), input,
    help ? el('small', {}, help) : null);
}

function checkList(checks) {
  return el('ul', { class: 'checks' }, checks.map((c) => el('li', {},
    badge(c.ok ? 'passed' : 'failed', c.ok ? 'ok' : 'bad'), ' ', el('strong', {}, c.name), ': ',
    c.detail || '')));
}

// --- routing ------------------------------------------------------------------------------------

const routes = [
  [/^\/console\/?$/, () => connectionsPage()],
  [/^\/console\/connections\/?$/, () => connectionsPage()],
  [/^\/console\/connections\/new$/, () => registerPage()],
  [/^\/console\/connections\/(.+)$/, (m) => connectionPage(m[1])],
  [/^\/console\/jobs\/?$/, () => jobsPage()],
  [/^\/console\/jobs\/([^/]+)$/, (m) => jobPage(decodeURIComponent(m[1]))],
  [/^\/console\/requests\/?$/, () => requestsPage()],
  [/^\/console\/access\/?$/, () => accessPage()],
  [/^\/console\/upgrade(\/.*)?$/, () => upgradeGate()],
];

let leaving = () => {}; // stops the page's polling when another page opens

async function render() {
  leaving();
  leaving = () => {};
  statusLine.replaceChildren();
  const path = window.location.pathname;
  for (const link of document.querySelectorAll('#nav a')) {
    const here = path.startsWith(link.getAttribute('href'));
    if (here) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  const match = routes.map(([re, page]) => [path.match(re), page]).find(([m]) => m);
  main.replaceChildren(el('p', {}, 'Loading…'));
  try {
    if (match) await match[1](match[0]);
    else notFound();
  } catch (error) {
    main.replaceChildren(el('h1', {}, 'Something went wrong'), problem(error));
  }
  const heading = main.querySelector('h1');
  document.title = `${heading ? heading.textContent : 'Console'} · PDP console`;
}

function notFound() {
  main.replaceChildren(el('h1', {}, 'No such page'),
    el('p', {}, pageLink('/console/connections', 'Go to the connections')));
}

function go(href, message) {
  window.history.pushState({}, '', href);
  render().then(() => {
    if (message) say(message);
    main.focus();
  });
}

document.addEventListener('click', (event) => {
  const link = event.target.closest('a[href^="/console/"]');
  if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  if (link.getAttribute('href').startsWith('/console/static/')) return;
  event.preventDefault();
  go(link.getAttribute('href'));
});
window.addEventListener('popstate', () => render());

// --- connections ------------------------------------------------------------------------------

async function connectionsPage() {
  const { data } = await api('POST', '/data/object/search', { size: 1000 });
  const rows = await Promise.all(data.hits.map(async (hit) => {
    try {
      return { hit, conn: (await api('GET', `/data/connection/${apiPath(hit.path)}`)).data };
    } catch (error) {
      return { hit, conn: null, error };
    }
  }));
  const table = el('table', {},
    el('caption', { class: 'skip' }, 'Registered connections'),
    el('thead', {}, el('tr', {}, ['Connection', 'Technology', 'Status', 'Last sync', 'Next sync']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows.map(({ hit, conn }) => el('tr', {},
      el('td', {}, pageLink(`/console/connections/${apiPath(hit.path)}`, hit.name)),
      el('td', {}, conn ? conn.technology : '—'),
      el('td', {}, stateBadge(conn ? conn.state : hit.remoteState)),
      el('td', {}, when(conn && conn.lastSync)),
      el('td', {}, when(conn && conn.nextSync))))));
  main.replaceChildren(
    el('h1', {}, 'Connections'),
    el('p', {}, pageLink('/console/connections/new', 'Register a connection')),
    rows.length ? table : el('p', {}, 'No connection is registered yet.'));
}

// --- one connection: the object tree --------------------------------------------------------

async function connectionPage(rawPath) {
  const key = rawPath.split('/')[0];
  const root = (await api('GET', `/data/object/${key}`)).data;
  const details = el('section', { class: 'panel', 'aria-label': 'Selected object' });
  const tree = el('ul', { class: 'tree', role: 'tree', 'aria-label': `Objects of ${root.name}` });
  const search = el('input', { type: 'search', name: 'q', autocomplete: 'off' });
  const results = el('div', { 'aria-live': 'polite' });
  const form = el('form', { role: 'search', class: 'row' }, field('Search objects', search),
    el('button', { type: 'submit' }, 'Search'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      const { data } = await api('POST', `/data/object/search/${key}`,
        { searchText: search.value, recursive: true, size: PAGE });
      results.replaceChildren(el('p', {}, `${data.count} found`), el('ul', {},
        data.hits.map((hit) => el('li', {}, el('button', { type: 'button', class: 'node',
          onclick: () => showObject(details, hit.path) }, hit.path), ' ',
          stateBadge(hit.remoteState)))));
    } catch (error) {
      results.replaceChildren(problem(error));
    }
  });
  tree.append(treeNode(rootHit(root), details));
  main.replaceChildren(el('h1', {}, `Connection ${root.name}`), form, results,
    el('div', { class: 'split' }, el('section', { 'aria-label': 'Object tree' }, tree), details));
  await showObject(details, root.path);
}

function rootHit(object) {
  return { path: object.path, name: object.name, kind: object.kind,
    remoteState: object.remoteState, dataSourceId: object.dataSourceId };
}

function treeNode(hit, details) {
  const leaf = hit.kind === 'table' || hit.kind === 'column';
  const children = el('ul', { role: 'group', hidden: true });
  const item = el('li', { role: 'treeitem', 'aria-expanded': leaf ? null : 'false' });
  const label = el('button', { type: 'button', class: 'node', 'data-path': hit.path,
    onclick: () => showObject(details, hit.path) }, hit.name);
  const parts = [label, ' ', el('span', { class: 'muted' }, hit.kind), ' ',
    stateBadge(hit.remoteState)];
  if (hit.dataSourceId) parts.push(' ', badge('data source', 'ok'));
  if (!leaf) {
    const toggle = el('button', { type: 'button', class: 'toggle', 'aria-expanded': 'false',
      'aria-label': `Show the children of ${hit.name}` }, '+');
    toggle.addEventListener('click', async () => {
      const open = toggle.getAttribute('aria-expanded') === 'true';
      toggle.setAttribute('aria-expanded', String(!open));
      item.setAttribute('aria-expanded', String(!open));
      toggle.textContent = open ? '+' : '−';
      children.hidden = open;
      if (!open && !children.dataset.loaded) {
        children.dataset.loaded = 'yes';
        await loadChildren(hit.path, children, details, 0);
      }
    });
    parts.unshift(toggle, ' ');
  }
  item.append(...parts, children);
  return item;
}

async function loadChildren(path, list, details, offset) {
  try {
    const { data } = await api('POST', `/data/object/search/${apiPath(path)}`,
      { offset, size: PAGE });
    list.querySelector(':scope > li.more')?.remove();
    for (const hit of data.hits) list.append(treeNode(hit, details));
    if (!data.count && !offset) list.append(el('li', {}, 'No children (sync to list them).'));
    const shown = offset + data.hits.length;
    if (shown < data.count) {
      list.append(el('li', { class: 'more' }, el('button', { type: 'button',
        onclick: () => loadChildren(path, list, details, shown) },
      `Show more (${shown} of ${data.count})`)));
    }
  } catch (error) {
    list.append(el('li', {}, problem(error)));
  }
}

function settingChoice(name, label, setting, override) {
  const select = el('select', { name },
    el('option', { value: 'inherit' },
      `Inherit (now ${setting && setting.value ? 'on' : 'off'}${setting && setting.inheritedFrom
        ? ` from ${setting.inheritedFrom}` : ''})`),
    el('option', { value: 'on' }, 'On'),
    el('option', { value: 'off' }, 'Off'));
  select.value = override === true ? 'on' : override === false ? 'off' : 'inherit';
  return field(label, select);
}

async function showObject(details, path) {
  for (const node of document.querySelectorAll('.tree button.node')) {
    if (node.dataset.path === path) node.setAttribute('aria-current', 'true');
    else node.removeAttribute('aria-current');
  }
  let object;
  try {
    object = (await api('GET', `/data/object/${apiPath(path)}`)).data;
  } catch (error) {
    details.replaceChildren(problem(error));
    return;
  }
  const redraw = () => showObject(details, path);
  const outcome = el('div', { 'aria-live': 'polite' });
  const actions = el('div', { class: 'row' },
    el('button', { type: 'button', onclick: () => startSync(path, outcome) }, 'Sync now'),
    el('button', { type: 'button', onclick: () => confirmDelete(object, outcome) },
      object.kind === 'connection' ? 'Deregister…' : 'Delete…'));
  const permissions = el('section', {}, el('h3', {}, 'Permissions'));
  showPermissions(permissions, object.path);
  const columns = Array.isArray(object.columns) && object.columns.length
    ? el('section', {}, el('h3', {}, 'Columns'), el('ul', {}, object.columns.map((c) => el('li',
      {}, typeof c === 'string' ? c : `${c.name} ${c.type || ''} ${(c.tags || []).join(' ')}`))))
    : null;
  const connection = object.kind === 'connection' ? await connectionEditor(object.path, redraw)
    : null;
  details.replaceChildren(...[el('h2', {}, object.name), objectFacts(object), columns,
    settingsForm(object, redraw), permissions, connection, actions, outcome].filter(Boolean));
}

function objectFacts(object) {
  const settings = object.settings || {};
  const active = settings.isActive && settings.isActive.value;
  return el('dl', { class: 'facts' },
    el('dt', {}, 'Path'), el('dd', {}, object.path),
    el('dt', {}, 'Kind'), el('dd', {}, object.kind),
    el('dt', {}, 'Remote state'), el('dd', {}, stateBadge(object.remoteState)),
    el('dt', {}, 'Status'), el('dd', {}, stateBadge(active ? 'active' : 'inactive')),
    el('dt', {}, 'Data source'), el('dd', {}, object.dataSource
      ? `${object.dataSource.id} (${object.dataSource.active ? 'active' : 'inactive'})` : 'none'),
    el('dt', {}, 'Tags'), el('dd', {}, (object.tags || []).join(', ') || 'none'),
    el('dt', {}, 'Data owners'), el('dd', {}, (object.dataOwners || [])
      .map((o) => (typeof o === 'string' ? o : o.principal || JSON.stringify(o))).join(', ')
      || 'none'),
    el('dt', {}, 'Children'), el('dd', {}, String(object.childCount ?? 0)),
    el('dt', {}, 'Last sync'), el('dd', {}, when(object.lastSync)));
}

function settingsForm(object, redraw) {
  const settings = object.settings || {};
  const overrides = object.overrides || {};
  const outcome = el('div', { 'aria-live': 'polite' });
  const form = el('form', {},
    el('h3', {}, 'Settings'),
    settingChoice('isActive', 'Active (a data source)', settings.isActive, overrides.isActive),
    object.kind === 'table' ? null : settingChoice('activateNewChildren',
      'Activate new children', settings.activateNewChildren, overrides.activateNewChildren),
    el('button', { type: 'submit', class: 'primary' }, 'Save settings'), outcome);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const body = {};
    for (const select of form.querySelectorAll('select')) {
      body[select.name] = { on: true, off: false, inherit: null }[select.value];
    }
    try {
      const { status, data } = await api('PUT', `/data/settings/${apiPath(object.path)}`, body);
      if (status === 202) {
        outcome.replaceChildren(el('p', { class: 'notice' }, 'A job applies the change: ',
          pageLink(`/console/jobs/${data.jobId}`, `job ${data.jobId}`)));
      } else {
        await redraw();
        say(`Settings of ${object.path} saved.`);
      }
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  });
  return form;
}

async function showPermissions(section, path) {
  const heading = section.firstChild;
  const outcome = el('div', { 'aria-live': 'polite' });
  let data;
  try {
    data = (await api('GET', `/data/permission/${apiPath(path)}`)).data;
  } catch (error) {
    section.replaceChildren(heading, problem(error));
    return;
  }
  const change = async (body) => {
    try {
      await api('PUT', `/data/permission/${apiPath(path)}`, body);
      await showPermissions(section, path);
      say(`Permissions of ${path} changed.`);
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  };
  const rows = data.permissions.map((p) => el('li', {},
    `${p.role}: ${p.principal} (${p.principalKind})`,
    p.inherited ? ` inherited from ${p.path}` : ' ',
    p.inherited ? null : el('button', { type: 'button', onclick: () => change({
      principal: p.principal, role: p.role, principalKind: p.principalKind, revoke: true }) },
    `Revoke ${p.role} of ${p.principal}`)));
  const principal = el('input', { name: 'principal', autocomplete: 'off' });
  const kind = el('select', { name: 'principalKind' },
    el('option', { value: 'user' }, 'User'), el('option', { value: 'group' }, 'Group'));
  const role = el('select', { name: 'role' },
    el('option', { value: 'DataOwner' }, 'Data Owner'),
    el('option', { value: 'InfrastructureAdmin' }, 'Infrastructure Admin'));
  const form = el('form', { class: 'row' }, field('Principal', principal), field('Kind', kind),
    field('Role', role), el('button', { type: 'submit' }, 'Grant'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    change({ principal: principal.value, principalKind: kind.value, role: role.value });
  });
  section.replaceChildren(heading, rows.length ? el('ul', {}, rows) : el('p', {}, 'None.'),
    form, outcome);
}

async function startSync(path, outcome) {
  try {
    const { data } = await api('POST', `/data/crawl/${apiPath(path)}`, { forceRecursive: true });
    go(`/console/jobs/${data.jobId}`);
  } catch (error) {
    const box = problem(error);
    if (error.detail && error.detail.jobId) {
      box.append(el('p', {}, pageLink(`/console/jobs/${error.detail.jobId}`, 'Follow that job')));
    }
    outcome.replaceChildren(box);
  }
}

function confirmDelete(object, outcome) {
  const what = object.kind === 'connection'
    ? `Deregister ${object.name}: it and its ${object.childCount ?? 0} objects go.`
    : `Delete ${object.path} and its ${object.childCount ?? 0} children from the store.`;
  const yes = el('button', { type: 'button', class: 'primary' }, 'Yes, remove it');
  const no = el('button', { type: 'button' }, 'Cancel');
  const box = el('div', { class: 'warning', role: 'alertdialog', 'aria-label': 'Confirm' },
    el('p', {}, what), el('div', { class: 'row' }, yes, no));
  no.addEventListener('click', () => outcome.replaceChildren());
  yes.addEventListener('click', async () => {
    try {
      await api('DELETE', `/data/object/${apiPath(object.path)}`);
      go('/console/connections', `${object.path} removed.`);
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  });
  outcome.replaceChildren(box);
  yes.focus();
}

// --- register a connection -----------------------------------------------------------------

const TECHNOLOGIES = {
  postgresql: {
    label: 'PostgreSQL',
    endpoint: [['host', 'Host'], ['port', 'Port', '5432'], ['database', 'Database (empty: all)']],
    methods: { password: ['User and password', [['user', 'User'], ['password', 'Password', 'secret']]] },
  },
  trino: {
    label: 'Trino',
    endpoint: [['host', 'Host'], ['port', 'Port', '443'], ['httpScheme', 'Scheme (https or http)', 'https']],
    methods: {
      password: ['Username and password', [['username', 'Username'], ['password', 'Password', 'secret']]],
      oauthSecret: ['OAuth client secret', [['oauth.tokenEndpoint', 'Token endpoint'],
        ['oauth.clientId', 'Client id'], ['oauth.clientSecret', 'Client secret', 'secret'],
        ['oauth.scope', 'Scope'], ['oauth.resource', 'Resource']]],
      oauthCertificate: ['OAuth client certificate', [['oauth.tokenEndpoint', 'Token endpoint'],
        ['oauth.clientId', 'Client id'], ['oauth.certificate', 'Certificate (PEM)', 'pem'],
        ['oauth.privateKey', 'Private key (PEM)', 'pem'],
        ['oauth.privateKeyPassword', 'Private key password', 'secret'],
        ['oauth.thumbprint', 'Certificate thumbprint (optional: checked against it)'],
        ['oauth.scope', 'Scope'], ['oauth.resource', 'Resource']]],
    },
  },
  snowflake: {
    label: 'Snowflake',
    endpoint: [['account', 'Account'], ['warehouse', 'Warehouse'], ['role', 'Role']],
    methods: {
      password: ['User and password', [['user', 'User'], ['password', 'Password', 'secret']]],
      keyPair: ['Key pair', [['user', 'User'], ['privateKey', 'Private key (PEM)', 'pem'],
        ['privateKeyPassword', 'Private key password', 'secret']]],
    },
  },
  databricks: {
    label: 'Databricks',
    endpoint: [['host', 'Workspace host']],
    methods: {
      token: ['Personal access token', [['token', 'Token', 'secret']]],
      oauth: ['OAuth client', [['clientId', 'Client id'], ['clientSecret', 'Client secret', 'secret']]],
    },
  },
};

function input(name, kind, value) {
  if (kind === 'pem') {
    const area = el('textarea', { name, rows: 4, cols: 64, spellcheck: 'false' });
    const file = el('input', { type: 'file', accept: '.pem,.crt,.key',
      'aria-label': `Read ${name} from a file` });
    file.addEventListener('change', async () => {
      if (file.files[0]) area.value = await file.files[0].text();
      area.dispatchEvent(new Event('input', { bubbles: true }));
    });
    area.fileInput = file;
    return area;
  }
  return el('input', { name, type: kind === 'secret' ? 'password' : 'text',
    autocomplete: kind === 'secret' ? 'new-password' : 'off', value: value || null });
}

function setDeep(target, dotted, value) {
  const parts = dotted.split('.');
  let here = target;
  for (const part of parts.slice(0, -1)) here = here[part] ||= {};
  here[parts.at(-1)] = value;
}

// --- connection details: one set of fields for registering and for editing ---------------

function detailsFields(technology, method, endpoint, onMethod, heading = 'h2') {
  // the endpoint's fields (with the given values, else the defaults), the authentication
  // method, and the credentials' fields, which are always empty (the API never shows them)
  const spec = TECHNOLOGIES[technology];
  const controls = [el(heading, {}, `${spec.label} endpoint`)];
  for (const [name, label, value] of spec.endpoint) {
    const given = endpoint[name];
    const control = input(name, 'text', given === undefined ? value : String(given));
    control.dataset.part = 'endpoint';
    if (name === 'port') control.dataset.number = 'yes';
    controls.push(field(label, control));
  }
  const methods = Object.entries(spec.methods);
  if (methods.length > 1) {
    const chooser = el('select', { name: 'method' },
      methods.map(([name, [label]]) => el('option', { value: name }, label)));
    chooser.value = method;
    chooser.addEventListener('change', () => onMethod(chooser.value));
    controls.push(field('Authentication', chooser));
  }
  controls.push(el(heading, {}, 'Credentials'));
  for (const [name, label, kind] of spec.methods[method][1]) {
    const control = input(name, kind);
    control.dataset.part = 'credentials';
    controls.push(field(label, control));
    if (control.fileInput) controls.push(field(`${label}: from a file`, control.fileInput));
  }
  return controls;
}

function readDetails(body, technology, endpoint = {}) {
  // `endpoint`: the stored endpoint's keys the form does not show, kept as they are
  const shown = new Set(TECHNOLOGIES[technology].endpoint.map(([name]) => name));
  const details = { technology, credentials: {},
    endpoint: Object.fromEntries(Object.entries(endpoint).filter(([name]) => !shown.has(name))) };
  for (const control of body.querySelectorAll('[data-part]')) {
    if (control.value === '') continue;
    const value = control.dataset.number ? Number(control.value) : control.value;
    setDeep(details[control.dataset.part], control.name, value);
  }
  return details;
}

function validationGate(body, read, validate, save, outcome) {
  // Save stays disabled until Validate succeeded for exactly the details in the form
  let checked = null;
  const reset = () => { checked = null; save.disabled = true; };
  body.addEventListener('input', reset);
  validate.addEventListener('click', async () => {
    const details = read();
    outcome.replaceChildren(el('p', {}, 'Validating…'));
    try {
      const { data } = await api('POST', '/data/connection/validate', details);
      outcome.replaceChildren(el('p', { class: data.ok ? 'notice' : 'error' },
        data.ok ? 'The platform accepted these details.' : 'The platform refused these details.'),
      checkList(data.checks));
      checked = data.ok ? JSON.stringify(details) : null;
      save.disabled = !data.ok;
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  });
  // the form submits only the details Validate accepted: `send(details)` saves them
  const submit = (form, send) => form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const details = read();
    if (checked !== JSON.stringify(details)) {
      outcome.replaceChildren(el('p', { class: 'error' }, 'Validate the connection first.'));
      return;
    }
    await send(details);
  });
  return { reset, submit };
}

function technologyTabs(current, pick) {
  const names = Object.keys(TECHNOLOGIES);
  const tabs = el('div', { role: 'tablist', 'aria-label': 'Technology' });
  tabs.append(...names.map((name) => {
    const tab = el('button', { type: 'button', role: 'tab', 'aria-selected': String(name === current),
      tabindex: name === current ? '0' : '-1' }, TECHNOLOGIES[name].label);
    tab.addEventListener('click', () => pick(name));
    tab.addEventListener('keydown', (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      pick(names[(names.indexOf(current) + step + names.length) % names.length]);
      document.querySelector('[role="tab"][aria-selected="true"]').focus();
    });
    return tab;
  }));
  return tabs;
}

function registerPage() {
  let technology = 'postgresql';
  let method = 'password';
  const tabs = el('div');
  const body = el('div', { role: 'tabpanel' });
  const outcome = el('div', { 'aria-live': 'polite' });
  const keyInput = el('input', { name: 'connectionKey', required: true, autocomplete: 'off' });
  const activate = el('input', { type: 'checkbox', name: 'isActive', id: 'reg-active' });
  const recursive = el('input', { type: 'checkbox', name: 'forceRecursiveCrawl', checked: true,
    id: 'reg-recursive' });
  const validate = el('button', { type: 'button' }, 'Validate Connection');
  const save = el('button', { type: 'submit', class: 'primary', disabled: true }, 'Register');
  const read = () => readDetails(body, technology);
  const gate = validationGate(body, read, validate, save, outcome);
  const draw = () => {
    tabs.replaceChildren(technologyTabs(technology, (name) => {
      technology = name;
      method = Object.keys(TECHNOLOGIES[name].methods)[0];
      draw();
    }));
    body.replaceChildren(...detailsFields(technology, method, {}, (m) => { method = m; draw(); }));
    gate.reset();
  };
  const form = el('form', {}, field('Connection key', keyInput,
    'The name in object paths and policies; letters, digits, - and _.'), tabs, body,
  el('h2', {}, 'First sync'),
  el('div', { class: 'check' }, activate, el('label', { for: 'reg-active' }, 'Activate new objects (they become data sources)')),
  el('div', { class: 'check' }, recursive, el('label', { for: 'reg-recursive' }, 'List schemas and tables in the first sync')),
  el('div', { class: 'row' }, validate, save), outcome);
  gate.submit(form, async (details) => {
    try {
      const { data } = await api('POST', '/data/connection', {
        connectionKey: keyInput.value,
        connection: details,
        settings: { isActive: activate.checked, activateNewChildren: activate.checked },
        options: { forceRecursiveCrawl: recursive.checked },
      });
      go(data.jobId ? `/console/jobs/${data.jobId}` : `/console/connections/${data.connectionKey}`,
        `Connection ${data.connectionKey} registered; its first sync runs.`);
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  });
  draw();
  main.replaceChildren(el('h1', {}, 'Register a connection'), form);
}

async function connectionEditor(key, redraw) {
  // a connection's endpoint and credentials (Validate, then Save: PUT /data/connection/{key})
  // and its sync schedule; the API decides who may (403 otherwise) and re-checks the platform
  let conn;
  try {
    conn = (await api('GET', `/data/connection/${apiPath(key)}`)).data;
  } catch (error) {
    return el('section', {}, el('h3', {}, 'Connection details'), problem(error));
  }
  let method = Object.keys(TECHNOLOGIES[conn.technology].methods)[0];
  const body = el('div');
  const outcome = el('div', { 'aria-live': 'polite' });
  const validate = el('button', { type: 'button' }, 'Validate Connection');
  const save = el('button', { type: 'submit', class: 'primary', disabled: true },
    'Save endpoint and credentials');
  const read = () => readDetails(body, conn.technology, conn.endpoint);
  const gate = validationGate(body, read, validate, save, outcome);
  const draw = () => {
    body.replaceChildren(...detailsFields(conn.technology, method, conn.endpoint,
      (m) => { method = m; draw(); }, 'h4'));
    gate.reset();
  };
  const form = el('form', {}, el('h3', {}, 'Endpoint and credentials'), el('p', {},
    'The stored credentials are never shown: give them again to change the endpoint or the ' +
    'credentials; Validate checks the details with the platform before Save.'),
  body, el('div', { class: 'row' }, validate, save), outcome);
  gate.submit(form, (details) => saveConnection(key,
    { endpoint: details.endpoint, credentials: details.credentials }, outcome, redraw));
  draw();
  return el('section', {}, form, scheduleForm(key, conn, redraw));
}

function scheduleForm(key, conn, redraw) {
  const schedule = el('input', { name: 'schedule', value: conn.schedule, autocomplete: 'off' });
  const threshold = el('input', { name: 'failSafeThreshold', value: String(conn.failSafeThreshold),
    inputmode: 'decimal' });
  const outcome = el('div', { 'aria-live': 'polite' });
  const form = el('form', {}, el('h3', {}, 'Sync schedule'),
    field('Schedule (cron)', schedule, `Next sync: ${when(conn.nextSync)}`),
    field('Fail-safe threshold', threshold,
      'The share of objects one sync may find gone before it stops and changes nothing.'),
    el('button', { type: 'submit' }, 'Save schedule'), outcome);
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    saveConnection(key, { schedule: schedule.value,
      failSafeThreshold: Number(threshold.value) }, outcome, redraw);
  });
  return form;
}

async function saveConnection(key, body, outcome, redraw) {
  try {
    await api('PUT', `/data/connection/${apiPath(key)}`, body);
    await redraw();
    say(`Connection ${key}: ${Object.keys(body).join(', ')} saved.`);
  } catch (error) {
    outcome.replaceChildren(problem(error));
  }
}

// --- sync jobs ---------------------------------------------------------------------------

const JOBS_PAGE = 50;

function statsText(stats) {
  const parts = Object.entries(stats || {}).map(([name, value]) => `${statWords(name)} ${value}`);
  return parts.join(', ') || '—';
}

const LIVE_COUNTS = new Set(['listings', 'objectsListed', 'objectsNew', 'objectsGone']);

function jobSummary(job) {
  // a row of the history: what changed (and what failed); the live counts while it runs
  const finished = FINISHED.has(job.state);
  const parts = Object.entries(job.stats || {}).filter(([name, value]) => value
    && !name.endsWith('.unchanged') && !name.endsWith('.returned')
    && (!finished || !LIVE_COUNTS.has(name)));
  return parts.map(([name, value]) => `${statWords(name)} ${value}`).join(', ') || 'no change';
}

function historyLink(connection) {
  return pageLink(`/console/jobs?connection=${encodeURIComponent(connection)}`, connection);
}

async function jobsPage() {
  const query = new URLSearchParams(window.location.search);
  const offset = Number(query.get('offset') || 0);
  const connection = query.get('connection') || '';
  const params = new URLSearchParams({ offset: String(offset), size: String(JOBS_PAGE) });
  if (connection) params.set('connection', connection);
  const { data } = await api('GET', `/jobs?${params}`);
  const heading = connection ? `Sync jobs of ${connection}` : 'Sync jobs';
  main.replaceChildren(el('h1', {}, heading), jobsFilter(connection), jobsTable(data.hits),
    jobsPager(offset, data, connection));
}

function jobsFilter(connection) {
  const filter = el('input', { name: 'connection', value: connection || null });
  const form = el('form', { class: 'row' }, field('Connection', filter),
    el('button', { type: 'submit' }, 'Filter'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go(`/console/jobs${filter.value ? `?connection=${encodeURIComponent(filter.value)}` : ''}`);
  });
  return form;
}

function jobsTable(hits) {
  const rows = hits.map((job) => el('tr', {},
    el('td', {}, pageLink(`/console/jobs/${encodeURIComponent(job.id)}`, job.id)),
    el('td', {}, `${job.type} (${job.trigger})`),
    el('td', {}, stateBadge(job.state)),
    el('td', {}, job.connection ? historyLink(job.connection) : '—'),
    el('td', {}, job.path || '—'),
    el('td', {}, when(job.startedAt)),
    el('td', {}, when(job.endedAt)),
    el('td', {}, jobSummary(job))));
  return el('table', {},
    el('thead', {}, el('tr', {}, ['Job', 'Type', 'State', 'Connection', 'Object', 'Started',
      'Ended', 'What changed'].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, rows));
}

function jobsPager(offset, data, connection) {
  const pager = el('nav', { class: 'row', 'aria-label': 'Pages of jobs' });
  const base = connection ? `connection=${encodeURIComponent(connection)}&` : '';
  const to = (at) => `/console/jobs?${base}offset=${at}`;
  if (offset > 0) pager.append(pageLink(to(Math.max(0, offset - JOBS_PAGE)), 'Newer'));
  pager.append(el('span', {}, `${offset + 1}–${offset + data.hits.length} of ${data.count}`));
  if (offset + JOBS_PAGE < data.count) pager.append(pageLink(to(offset + JOBS_PAGE), 'Older'));
  return pager;
}

const FINISHED = new Set(['completed', 'failed', 'cancelled']);
const STAT_WORDS = {
  listings: 'listings made', failedListings: 'listings failed',
  objectsListed: 'objects listed', objectsNew: 'new objects found',
  objectsGone: 'objects no longer found',
  notGovernedInTrino: 'active data sources no Trino catalog exposes',
  requestsOpened: 'requests opened',
};

function statWords(name) {
  // `table.added` -> `tables added`: the job's counts as a person reads them
  const [kind, verb] = name.split('.');
  return STAT_WORDS[name] || (verb ? `${kind}s ${verb}` : name);
}

async function jobPage(id) {
  const view = {
    progress: el('div', { 'aria-live': 'polite' }),
    facts: el('dl', { class: 'facts' }),
    errors: el('section', {}),
    following: el('p', { class: 'muted', id: 'following' }),
  };
  // what went wrong first: a fail-safe trip or failed listings before the details
  main.replaceChildren(el('h1', {}, `Job ${id}`), view.progress, view.errors, view.facts,
    view.following);
  let last = '';
  const show = (job) => {
    last = showJob(view, job, last);
  };
  leaving = followJob(id, show, (how) => { view.following.textContent = how; });
}

// Follows a job: its event stream (GET /jobs/{id}/events), or, when the stream cannot be
// opened or keeps failing, GET /jobs/{id} every second. Returns what stops following.
function followJob(id, show, saying) {
  const path = `/jobs/${encodeURIComponent(id)}`;
  let stopped = false;
  let timer = null;
  let failures = 0;
  const source = new EventSource(`${path}/events`);
  const poll = async () => {
    if (stopped) return;
    try {
      const job = (await api('GET', path)).data;
      if (!stopped) show(job);
      if (!stopped && !FINISHED.has(job.state)) timer = setTimeout(poll, 1000);
    } catch (error) {
      if (!stopped) main.replaceChildren(el('h1', {}, 'Something went wrong'), problem(error));
    }
  };
  const fallBack = () => {
    source.close();
    saying('Following the job by reading it every second (its event stream is unavailable).');
    poll();
  };
  const receive = (event) => {
    failures = 0;
    show(JSON.parse(event.data));
  };
  source.addEventListener('open', () => saying('Following the job live.'));
  source.addEventListener('job', receive);
  source.addEventListener('end', (event) => {
    source.close();
    receive(event);
    saying('');
  });
  source.addEventListener('problem', fallBack);
  source.addEventListener('error', () => {
    // CONNECTING: the stream ended (its lifetime) or broke, and the browser reconnects
    failures += 1;
    if (source.readyState === EventSource.CLOSED || failures >= 3) fallBack();
  });
  return () => {
    stopped = true;
    source.close();
    clearTimeout(timer);
  };
}

function showJob(view, job, last) {
  const finished = FINISHED.has(job.state);
  view.facts.replaceChildren(
    el('dt', {}, 'State'), el('dd', { id: 'job-state' }, stateBadge(job.state)),
    el('dt', {}, 'Type'), el('dd', {}, `${job.type} (${job.trigger})`),
    el('dt', {}, 'Connection'), el('dd', {}, job.connection
      ? [pageLink(`/console/connections/${job.connection}`, job.connection), ' (',
        pageLink(`/console/jobs?connection=${encodeURIComponent(job.connection)}`,
          'its sync history'), ')'] : '—'),
    el('dt', {}, 'Object'), el('dd', {}, job.path || '—'),
    el('dt', {}, 'Started'), el('dd', {}, when(job.startedAt)),
    el('dt', {}, 'Ended'), el('dd', {}, when(job.endedAt)),
    ...Object.entries(job.stats || {}).flatMap(([name, value]) => [el('dt', {}, statWords(name)),
      el('dd', { 'data-stat': name }, String(value))]));
  const summary = finished ? `The job ${job.state}.` : `The job is ${job.state}…`;
  if (summary !== last) {
    const note = finished ? [] : [el('progress', { 'aria-label': 'Sync progress' }),
      el('p', { class: 'muted' }, 'What the sync adds, changes and marks missing is applied '
        + 'in one step when it has listed everything; until then the counts say what it found.')];
    view.progress.replaceChildren(el('p', {}, summary), ...note);
  }
  view.errors.replaceChildren(...jobErrors(job));
  return summary;
}

function jobErrors(job) {
  const all = job.errors || [];
  const trip = all.find((e) => e && e.failSafe);
  const others = all.filter((e) => e !== trip);
  const parts = trip ? failSafeWords(trip.failSafe, job) : [];
  if (!others.length) return parts;
  const failed = (job.stats || {}).failedListings;
  parts.push(el('h2', {}, 'Errors'));
  if (failed) {
    parts.push(el('p', {}, `${failed} ${failed === 1 ? 'listing' : 'listings'} failed. What `
      + 'they hold is left as it was: nothing under them is added or marked missing.'));
  }
  parts.push(el('ul', {}, others.map((e) => el('li', { class: 'error' }, ...errorWords(e)))));
  return parts;
}

function errorWords(error) {
  if (typeof error === 'string') return [error];
  const message = error.message || JSON.stringify(error);
  if (!error.path) return [message];
  return [pageLink(`/console/connections/${apiPath(error.path)}`, error.path), `: ${message}`];
}

function percent(fraction) {
  return `${Math.round(fraction * 100)} %`;
}

function failSafeWords(trip, job) {
  const { missingTables: gone, presentTables: present, threshold } = trip;
  const where = job.connection || job.path;
  const share = percent(gone / present);
  return [
    el('h2', {}, 'The fail-safe stopped this sync'),
    el('section', { class: 'failsafe', 'aria-label': 'The fail-safe, explained' },
      el('p', {}, el('strong', {}, 'What tripped: '), `this sync would have marked ${gone} of `
        + `the ${present} tables present on ${where} as missing (${share}), more than the `
        + `connection's fail-safe threshold of ${percent(threshold)}.`),
      el('p', {}, el('strong', {}, 'What was kept: '), 'everything. Nothing was applied: the '
        + `${present} tables stay present with their settings, tags and data owners, the `
        + 'policies on them decide as before, and nothing found by this sync was added.'),
      el('p', {}, el('strong', {}, 'How to proceed: '), 'if the tables still exist, the '
        + "platform did not show them to the connection's user: check its credentials and its "
        + 'grants, then sync again. If they were dropped or moved on purpose, raise the '
        + `connection's failSafeThreshold above ${share} (PUT /data/connection/${where}), `
        + 'sync again, and set it back.')),
  ];
}

// --- requests inbox ------------------------------------------------------------------------

const REQUEST_KINDS = { column_added: 'Column added', column_deleted: 'Column deleted' };

async function requestsPage() {
  const query = new URLSearchParams(window.location.search);
  const state = query.get('state') ?? 'pending';
  const { data } = await api('GET', `/requests${state ? `?state=${encodeURIComponent(state)}` : ''}`);
  const chooser = el('select', { name: 'state' },
    [['pending', 'Pending'], ['validated', 'Validated'], ['acknowledged', 'Acknowledged'],
      ['', 'All']].map(([value, label]) => el('option', { value }, label)));
  chooser.value = state;
  const form = el('form', { class: 'row' }, field('Show', chooser),
    el('button', { type: 'submit' }, 'Show'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    go(`/console/requests?state=${encodeURIComponent(chooser.value)}`);
  });
  const outcome = el('div', { 'aria-live': 'polite' });
  const rows = data.hits.map((request) => {
    const verb = request.kind === 'column_deleted' ? 'acknowledge' : 'validate';
    const action = request.state === 'pending'
      ? el('button', { type: 'button', onclick: async () => {
        try {
          await api('POST', `/requests/${request.id}/${verb}`);
          await render();
          say(`Request ${request.id} on ${request.column} ${verb}d.`);
        } catch (error) {
          outcome.replaceChildren(problem(error));
        }
      } }, verb === 'validate' ? `Validate ${request.column}` : `Acknowledge ${request.column}`)
      : `${request.state} by ${request.resolvedBy || '—'}`;
    return el('tr', {},
      el('td', {}, REQUEST_KINDS[request.kind] || request.kind),
      el('td', {}, request.path),
      el('td', {}, request.column),
      el('td', {}, stateBadge(request.state)),
      el('td', {}, when(request.createdAt)),
      el('td', {}, action));
  });
  main.replaceChildren(el('h1', {}, 'Requests'), form, outcome, rows.length
    ? el('table', {}, el('thead', {}, el('tr', {}, ['Kind', 'Table', 'Column', 'State', 'Opened',
      'Action'].map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, rows))
    : el('p', {}, 'No request here.'));
}

// --- access: a decision and why ------------------------------------------------------------

const OPERATIONS = ['SelectFromColumns', 'InsertIntoTable', 'UpdateTableColumns',
  'DeleteFromTable', 'DropTable', 'ShowColumns'];

function accessPage() {
  const query = new URLSearchParams(window.location.search);
  const user = el('input', { name: 'user', value: query.get('user') || signedInAs });
  const operation = el('select', { name: 'operation' },
    OPERATIONS.map((name) => el('option', { value: name }, name)));
  const catalog = el('input', { name: 'catalog', value: query.get('catalog') || null });
  const schema = el('input', { name: 'schema', value: query.get('schema') || null });
  const table = el('input', { name: 'table', value: query.get('table') || null });
  const answer = el('section', { 'aria-live': 'polite', 'aria-label': 'Decision' });
  const types = {}; // column -> Trino type, as the person gives it for the masks' SQL
  const form = el('form', {}, field('User', user), field('Operation', operation),
    el('div', { class: 'row' }, field('Trino catalog', catalog), field('Schema', schema),
      field('Table', table)),
    el('button', { type: 'submit', class: 'primary' }, 'Explain'));
  const explain = async () => {
    try {
      const { data } = await api('POST', '/console/explain', { user: user.value,
        operation: operation.value, catalog: catalog.value, schema: schema.value,
        table: table.value, types });
      answer.replaceChildren(...decisionView(data, (column, type) => {
        types[column] = type;
        explain();
      }));
    } catch (error) {
      answer.replaceChildren(problem(error));
    }
  };
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    explain();
  });
  const who = el('section', { 'aria-live': 'polite', 'aria-label': 'Who may read it' });
  const readers = el('button', { type: 'button' }, 'Who may read this table');
  readers.addEventListener('click', async () => {
    try {
      who.replaceChildren(...readersView((await api('POST', '/console/readers', {
        catalog: catalog.value, schema: schema.value, table: table.value })).data));
    } catch (error) {
      who.replaceChildren(problem(error));
    }
  });
  main.replaceChildren(el('h1', {}, 'Access'), el('p', {},
    'The decision the PDP makes now for a user and a table, and why (as pdp explain).'),
  form, el('div', { class: 'row' }, readers), answer, who);
}

function decisionView(data, retype) {
  return [
    el('h2', {}, badge(data.allowed ? 'ALLOWED' : 'DENIED', data.allowed ? 'ok' : 'bad'), ' ',
      `${data.operation} on ${data.object} by ${data.user}`),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Rule'), el('dd', {}, data.rule),
      el('dt', {}, 'Why'), el('dd', {}, data.reason),
      el('dt', {}, 'Policies'), el('dd', {}, data.policies.join(', ') || 'none'),
      el('dt', {}, 'Row filters'), el('dd', {}, data.rowFilters.length
        ? el('ul', {}, data.rowFilters.map((f) => el('li', {}, `${f.policy}: `,
          el('code', {}, f.expression)))) : 'none'),
      el('dt', {}, 'Administrator'), el('dd', {}, data.admin ? 'yes (immuta.user.admin)' : 'no'),
      el('dt', {}, 'Revision'), el('dd', {}, data.revision)),
    el('h3', {}, `Column masks: ${data.masks.length || 'none'}`),
    data.masks.length ? masksTable(data.masks, retype) : null,
  ];
}

function masksTable(masks, retype) {
  // the SQL depends on the column's type, which a query gives: the person may set it here
  const row = (m) => {
    const type = el('input', { value: m.type, 'aria-label': `Trino type of ${m.column}`,
      size: 14 });
    type.addEventListener('change', () => retype(m.column, type.value));
    return el('tr', {}, el('td', {}, m.column), el('td', {}, type),
      el('td', {}, `${m.kind} by ${m.policy}`), el('td', {}, el('code', {}, m.expression)),
      el('td', {}, m.reason));
  };
  return el('table', {}, el('caption', {}, 'The SQL Trino puts in place of each masked column'),
    el('thead', {}, el('tr', {}, ['Column', 'Type', 'Mask', 'SQL', 'Why']
      .map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, masks.map(row)));
}

function readersView(data) {
  return [el('h2', {}, `Who may read ${data.object}: ${data.count}`),
    data.count ? el('table', {}, el('thead', {}, el('tr', {}, ['User', 'Policies', 'Why']
      .map((h) => el('th', { scope: 'col' }, h)))), el('tbody', {}, data.hits.map((hit) =>
      el('tr', {}, el('td', {}, hit.user), el('td', {}, hit.policies.join(', ') || '—'),
        el('td', {}, hit.reason)))))
      : el('p', {}, 'Nobody of the directory.'),
    el('p', {}, 'Users of the directory only: groups that only Trino sends are not in it.')];
}

// --- the Upgrade Manager (GOVERNANCE and APPLICATION_ADMIN: the API decides) ---------------

async function upgradeGate() {
  let data;
  try {
    data = (await api('GET', '/data/upgrade')).data;
  } catch (error) {
    if (error.status === 403) { notFound(); return; }
    throw error;
  }
  const name = window.location.pathname.split('/')[3];
  if (name) {
    await upgradeWizard(decodeURIComponent(name));
    return;
  }
  main.replaceChildren(el('h1', {}, 'Upgrade Manager'), data.hits.length
    ? el('table', {}, el('thead', {}, el('tr', {}, ['Integration', 'Technology', 'Data sources',
      'State', ''].map((h) => el('th', { scope: 'col' }, h)))),
    el('tbody', {}, data.hits.map((i) => el('tr', {},
      el('td', {}, i.name), el('td', {}, i.technology), el('td', {}, String(i.dataSourceCount ?? 0)),
      el('td', {}, stateBadge(i.state)),
      el('td', {}, pageLink(`/console/upgrade/${encodeURIComponent(i.name)}`,
        i.state === 'not_started' ? `Start Upgrade of ${i.name}` : `Continue ${i.name}`))))))
    : el('p', {}, 'Every integration is upgraded.'));
}

const UPGRADE_STEPS = ['Display Name', 'Credentials', 'Confirm', 'Upgrade', 'Resolve', 'Finalize'];
const STEP_OF = { not_started: 0, started: 1, validated: 2, upgrading: 3, partial: 4,
  upgraded: 5, finalized: 5 };

async function upgradeWizard(name) {
  const base = `/data/upgrade/${encodeURIComponent(name)}`;
  const status = (await api('GET', base)).data;
  const outcome = el('div', { 'aria-live': 'polite' });
  const again = () => upgradeWizard(name);
  async function act(call) {
    try {
      await call();
      await again();
    } catch (error) {
      outcome.replaceChildren(problem(error));
    }
  }
  const state = status.state;
  const body = [
    ['not_started', 'started', 'validated'].includes(state) ? displayNameStep(status, base, act)
      : null,
    ['started', 'validated'].includes(state) ? credentialsStep(status, base, act) : null,
    state === 'validated' ? confirmStep(status, base, act) : null,
    state === 'upgrading' ? upgradingStep(status, base, act, again) : null,
    ...(['partial', 'upgraded'].includes(state) ? await resolveSteps(status, base, act) : []),
    state === 'finalized' ? el('p', { class: 'notice' }, `${status.name} is upgraded: `,
      pageLink(`/console/connections/${encodeURIComponent(status.displayName)}`,
        `connection ${status.displayName}`)) : null,
  ];
  main.replaceChildren(...[el('h1', {}, `Upgrade ${status.name}`), ...upgradeSummary(status),
    outcome, ...body].filter(Boolean));
}

function upgradeSummary(status) {
  const step = STEP_OF[status.state] ?? 0;
  return [
    el('ol', { class: 'steps', 'aria-label': 'Steps' }, UPGRADE_STEPS.map((label, i) =>
      el('li', { 'aria-current': i === step ? 'step' : null },
        i < step || status.state === 'finalized' ? `${label} (done)` : label))),
    el('dl', { class: 'facts' },
      el('dt', {}, 'Integration'), el('dd', {}, `${status.name} (${status.technology})`),
      el('dt', {}, 'State'), el('dd', {}, stateBadge(status.state)),
      el('dt', {}, 'Display Name'), el('dd', {}, status.displayName || '—'),
      el('dt', {}, 'Data sources'), el('dd', {}, Object.entries(status.counts || {})
        .map(([k, v]) => `${k} ${v}`).join(', ') || String(status.dataSourceCount ?? 0))),
  ];
}

function displayNameStep(status, base, act) {
  const display = el('input', { name: 'displayName', value: status.displayName || status.name });
  const form = el('form', {}, el('h2', {}, 'Display Name'),
    field('Display Name', display, 'The new connection\'s key.'),
    el('button', { type: 'submit', class: 'primary' }, 'Start Upgrade'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    act(() => api('POST', `${base}/start`, { displayName: display.value }));
  });
  return form;
}

function confirmStep(status, base, act) {
  const confirm = el('input', { type: 'checkbox', id: 'upgrade-confirm' });
  const yes = el('button', { type: 'button', class: 'primary', disabled: true },
    'Yes, Upgrade Connection');
  confirm.addEventListener('change', () => { yes.disabled = !confirm.checked; });
  yes.addEventListener('click', () => act(() => api('POST', `${base}/upgrade`, { confirm: true })));
  return el('section', {}, el('h2', {}, 'Confirm'),
    el('p', {}, 'The upgrade lists the platform, matches every data source to an object of the ',
      'new connection (tags, owners and status carried over), and retires the legacy data ',
      'source endpoints for this integration. ',
      el('a', { href: '/docs#/upgrade' }, 'What the upgrade changes (the API)')),
    el('div', { class: 'check' }, confirm, el('label', { for: 'upgrade-confirm' },
      `I understand that ${status.name} is upgraded to connection ${status.displayName}`)),
    yes);
}

function upgradingStep(status, base, act, again) {
  const job = status.job || {};
  const timer = setTimeout(() => again().catch(() => {}), 1000);
  leaving = () => clearTimeout(timer);
  return el('section', {}, el('h2', {}, 'Upgrade'),
    el('p', {}, `The upgrade job is ${job.state || 'starting'}…`),
    el('progress', { 'aria-label': 'Upgrade progress' }),
    el('p', {}, statsText(job.stats)),
    job.state === 'failed' ? el('button', { type: 'button',
      onclick: () => act(() => api('POST', `${base}/upgrade`, { confirm: true })) },
    'Resume the upgrade') : null);
}

async function resolveSteps(status, base, act) {
  const unresolved = (await api('GET', `${base}/unresolved`)).data;
  const finalize = el('button', { type: 'button', class: 'primary' }, 'Finalize');
  finalize.addEventListener('click', () => act(() => api('POST', `${base}/finalize`)));
  return [
    el('section', {}, el('h2', {}, 'Resolve'), unresolved.count
      ? el('ul', {}, unresolved.hits.map((source) => resolveItem(source, status, base, act)))
      : el('p', {}, 'Every data source is matched.')),
    el('section', {}, el('h2', {}, 'Finalize'), el('p', {},
      'Finalizing turns object sync on for the new connection.'), finalize),
  ];
}

function credentialsStep(status, base, act) {
  const spec = TECHNOLOGIES[status.technology] || { label: status.technology, endpoint: [],
    methods: {} };
  const methods = Object.entries(spec.methods);
  let method = methods.length ? methods[0][0] : '';
  const own = el('input', { type: 'checkbox', id: 'upgrade-own', checked: true });
  const fields = el('div', {});
  function draw() {
    const controls = [];
    for (const [name, label, value] of spec.endpoint) {
      const control = input(name, 'text', value);
      control.dataset.part = 'endpoint';
      if (name === 'port') control.dataset.number = 'yes';
      controls.push(field(label, control));
    }
    if (methods.length > 1) {
      const chooser = el('select', { name: 'method' },
        methods.map(([name, [label]]) => el('option', { value: name }, label)));
      chooser.value = method;
      chooser.addEventListener('change', () => { method = chooser.value; draw(); });
      controls.push(field('Authentication', chooser));
    }
    for (const [name, label, kind] of method ? spec.methods[method][1] : []) {
      const control = input(name, kind);
      control.dataset.part = 'credentials';
      controls.push(field(label, control));
      if (control.fileInput) controls.push(field(`${label}: from a file`, control.fileInput));
    }
    fields.replaceChildren(...controls);
    fields.hidden = own.checked;
  }
  own.addEventListener('change', draw);
  const form = el('form', {}, el('h2', {}, 'Credentials'),
    el('div', { class: 'check' }, own, el('label', { for: 'upgrade-own' },
      'Use the integration\'s own endpoint and credentials')), fields,
    el('button', { type: 'submit', class: 'primary' }, 'Validate Credentials'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const body = {};
    if (!own.checked) {
      const endpoint = {};
      const credentials = {};
      for (const control of fields.querySelectorAll('[data-part]')) {
        if (control.value === '') continue;
        const value = control.dataset.number ? Number(control.value) : control.value;
        setDeep(control.dataset.part === 'endpoint' ? endpoint : credentials, control.name, value);
      }
      if (Object.keys(endpoint).length) body.endpoint = endpoint;
      body.credentials = credentials;
    }
    act(() => api('POST', `${base}/validate`, body));
  });
  draw();
  return form;
}

function resolveItem(source, status, base, act) {
  const where = [source.database, source.schema, source.table].join('.');
  const path = el('input', { name: 'path', autocomplete: 'off' });
  const id = encodeURIComponent(source.id);
  const resolve = (action, extra = {}) => act(() => api('POST', `${base}/resolve/${id}`,
    { action, ...extra }));
  return el('li', { class: 'panel' },
    el('p', {}, el('strong', {}, where), ` (data source ${source.id}): ${source.reason || ''}`),
    field(`Table path for ${where}`, path,
      `Below the connection, for example ${status.displayName}/database/schema/table.`),
    el('div', { class: 'row' },
      el('button', { type: 'button', onclick: () => resolve('match', { path: path.value }) },
        `Resolve ${where}`),
      el('button', { type: 'button', onclick: () => resolve('retry') }, `Retry ${where}`),
      el('button', { type: 'button', onclick: () => resolve('disable') }, `Disable ${where}`),
      el('button', { type: 'button', onclick: () => resolve('delete') }, `Delete ${where}`)));
}

// --- start ---------------------------------------------------------------------------------

async function start() {
  const answer = await fetch('/console/session', { credentials: 'same-origin' });
  if (!answer.ok) {
    window.location.assign('/console/signin');
    return;
  }
  const who = await answer.json();
  csrf = who.csrf;
  signedInAs = who.user;
  document.getElementById('user').textContent = who.user;
  document.getElementById('signout').addEventListener('click', async () => {
    const answer = await fetch('/console/signout', { method: 'POST', credentials: 'same-origin',
      headers: { 'X-Pdp-Csrf': csrf } });
    // the IdP's end-session page when it has one (its session ends too), else Signed out
    const next = (await answer.json().catch(() => ({}))).next;
    window.location.assign(next || '/console/signedout');
  });
  await render(); // first the page, then the navigation's question (one request at a time)
  api('GET', '/data/upgrade').then(({ data }) => {
    document.getElementById('nav-upgrade').hidden = !data.count;
  }).catch(() => {});
}

start();
