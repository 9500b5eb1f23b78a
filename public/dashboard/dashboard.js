/* global document, window, sessionStorage, fetch, location, URLSearchParams, uPlot */
/**
 * The statistics dashboard: plain DOM and uPlot, no framework. The page itself is public; every API
 * call carries the admin token, which the person enters once and which stays in this tab's
 * sessionStorage. Everything repaints every POLL_MS while the tab is visible.
 */

const TOKEN_KEY = 'intake.adminToken';
const POLL_MS = 5000;
const STEP_SECONDS = { hourly: 3600, daily: 86_400, weekly: 7 * 86_400 };
// The server answers a fixed window per period, every bucket listed (empty ones as zeros).
const WINDOW_LABEL = { hourly: 'last 48 hours', daily: 'last 30 days', weekly: 'last 12 weeks' };
const TYPE_COLOURS = ['#2f6fde', '#8e44ad', '#16a2b8', '#e67e22', '#c0392b', '#27ae60', '#7f8c8d', '#d35400', '#2c3e50', '#f1c40f'];
const STATUS_SERIES = [
  { key: 'processed_events', label: 'processed', stroke: '#1f9d55' },
  { key: 'failed_events', label: 'failed', stroke: '#d64545' },
  { key: 'pending_events', label: 'pending', stroke: '#d68b00' },
];

const $ = (id) => document.getElementById(id);
const countOf = (counts, type) => (counts !== undefined && Object.hasOwn(counts, type) ? counts[type] : 0);
const numbers = new Intl.NumberFormat('en-US');

const state = {
  token: sessionStorage.getItem(TOKEN_KEY),
  app: undefined,
  period: 'hourly',
  timer: undefined,
  busy: false,
  /** A choice made during a refresh asks for another one right after it. */
  again: false,
  /** Whether the statistics context answers (it may be disabled). */
  statistics: true,
  charts: {},
};

class TokenRefused extends Error {}

// ---- API -------------------------------------------------------------------------------------

async function call(path) {
  const response = await fetch(path, {
    headers: { authorization: `Bearer ${state.token}`, accept: 'application/json' },
    cache: 'no-store',
  });
  if (response.status === 401) throw new TokenRefused('the admin token was refused');
  return response;
}

async function getJson(path) {
  const response = await call(path);
  if (!response.ok) throw await failureOf(path, response);
  return response.json();
}

async function failureOf(path, response) {
  const problem = await response.json().catch(() => ({}));
  return new Error(`${path.split('?')[0]} answered ${response.status}${problem.detail ? `: ${problem.detail}` : ''}`);
}

// ---- sign-in ---------------------------------------------------------------------------------

function showLogin(message) {
  stopPolling();
  $('dashboard').hidden = true;
  $('live').hidden = true;
  $('forget-token').hidden = true;
  $('login').hidden = false;
  $('login-error').textContent = message ?? '';
  $('token').focus();
}

function showDashboard() {
  $('login').hidden = true;
  $('dashboard').hidden = false;
  $('forget-token').hidden = false;
}

async function signIn(token) {
  state.token = token;
  try {
    await loadApplications();
  } catch (error) {
    state.token = null;
    sessionStorage.removeItem(TOKEN_KEY);
    showLogin(error instanceof TokenRefused ? 'That token was refused.' : `Could not reach Intake: ${error.message}`);
    return;
  }
  sessionStorage.setItem(TOKEN_KEY, token);
  showDashboard();
  await refresh();
  startPolling();
}

function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
  state.token = null;
  showLogin();
}

// ---- choices kept in the address (so a view can be bookmarked or shared without its token) -----

function readLocation() {
  const params = new URLSearchParams(location.hash.slice(1));
  const period = params.get('period');
  if (period && Object.hasOwn(STEP_SECONDS, period)) state.period = period;
  state.app = params.get('app') ?? undefined;
  $('period').value = state.period;
}

function writeLocation() {
  const params = new URLSearchParams();
  if (state.app) params.set('app', state.app);
  params.set('period', state.period);
  window.history.replaceState(null, '', `#${params}`);
}

// ---- polling ---------------------------------------------------------------------------------

function startPolling() {
  stopPolling();
  state.timer = window.setInterval(() => {
    if (!document.hidden) void refresh();
  }, POLL_MS);
}

function stopPolling() {
  if (state.timer !== undefined) window.clearInterval(state.timer);
  state.timer = undefined;
}

async function refresh() {
  if (!state.token) return;
  if (state.busy) {
    state.again = true;
    return;
  }
  state.busy = true;
  state.again = false;
  try {
    await loadApplications();
    // Each panel stands alone: one failing call leaves the others up to date.
    const results = await Promise.allSettled([loadStatistics(), loadSubscribers(), loadDestinations(), loadDeadLetters()]);
    const refused = results.find((r) => r.status === 'rejected' && r.reason instanceof TokenRefused);
    if (refused) throw refused.reason;
    const failures = results.filter((r) => r.status === 'rejected').map((r) => r.reason.message);
    setStatus(failures.join(' · '), failures.length > 0);
    $('live').hidden = false;
    $('updated').textContent = new Date().toISOString().slice(11, 19) + ' UTC';
  } catch (error) {
    if (error instanceof TokenRefused) {
      sessionStorage.removeItem(TOKEN_KEY);
      state.token = null;
      showLogin('The token was refused; enter it again.');
    } else {
      setStatus(error.message, true);
    }
  } finally {
    state.busy = false;
  }
  if (state.again && state.token) await refresh();
}

function setStatus(message, problem) {
  $('status').textContent = message;
  $('status').classList.toggle('problem', problem);
}

// ---- applications ----------------------------------------------------------------------------

const LISTED_APPS = 1000;

async function loadApplications() {
  const path = `/api/statistics/apps?limit=${LISTED_APPS}`;
  const response = await call(path);
  // Statistics switched off (INTAKE_DISABLE=statistics): the subscribers and deliveries still show.
  state.statistics = response.status !== 404;
  if (!state.statistics) {
    $('app').replaceChildren();
    $('no-apps').hidden = true;
    $('apps-cut').hidden = true;
    return;
  }
  if (!response.ok) throw await failureOf(path, response);
  const body = await response.json();
  const listed = body.items.map((item) => item.app_id);
  // An application named in the address stays chosen though the list's first page leaves it out:
  // another application's figures shown under a bookmark would mislead.
  const apps = state.app !== undefined && !listed.includes(state.app) ? [...listed, state.app] : listed;
  const select = $('app');
  const shown = [...select.options].map((option) => option.value);
  if (shown.join('\n') !== apps.join('\n')) {
    select.replaceChildren(
      ...apps.map((app) => {
        const option = document.createElement('option');
        option.value = app;
        option.textContent = app;
        return option;
      }),
    );
  }
  if (state.app === undefined) state.app = apps[0];
  if (state.app !== undefined) select.value = state.app;
  $('no-apps').hidden = apps.length > 0;
  $('apps-cut').hidden = body.next_cursor === null;
  writeLocation();
}

// ---- statistics ------------------------------------------------------------------------------

async function loadStatistics() {
  if (state.app === undefined || !state.statistics) {
    renderTotals(undefined);
    renderTypes([], 0, undefined, state.statistics ? 'No items yet' : 'Statistics are not deployed');
    renderCharts(undefined);
    return;
  }
  const app = state.app;
  const period = state.period;
  const query = new URLSearchParams({ time_period: period });
  const dashboard = await getJson(`/api/statistics/dashboard/${encodeURIComponent(app)}?${query}`);
  // A choice made while the request was in flight wins over its answer.
  if (app !== state.app || period !== state.period) return;
  renderTotals(dashboard.totals);
  renderTypes(dashboard.by_event_type, dashboard.event_types, dashboard.other_event_types);
  renderCharts(dashboard);
}

function renderTotals(totals) {
  for (const key of ['total_events', 'processed_events', 'failed_events', 'pending_events']) {
    $(key.replace('_', '-')).textContent = totals ? numbers.format(totals[key]) : '–';
  }
}

/** The busiest types the API names, and one row summing the ones it leaves out. */
function renderTypes(types, count = types.length, others = undefined, empty = 'No items yet') {
  const rows = types.map((type) =>
    row([type.event_type, type.total_events, type.processed_events, type.failed_events, type.pending_events].map(cell)),
  );
  const left = count - types.length;
  if (left > 0 && others) {
    const label = cell(`${numbers.format(left)} other type${left === 1 ? '' : 's'}`, 'muted');
    rows.push(
      row([label, ...[others.total_events, others.processed_events, others.failed_events, others.pending_events].map((n) => cell(n))]),
    );
  }
  $('types').tBodies[0].replaceChildren(...(rows.length > 0 ? rows : [emptyRow(5, empty)]));
}

function renderCharts(dashboard) {
  const buckets = dashboard?.buckets ?? [];
  const period = dashboard?.time_period ?? state.period;
  const times = buckets.map((bucket) => Date.parse(bucket.bucket_start) / 1000);
  const byTime = new Map(buckets.map((bucket) => [Date.parse(bucket.bucket_start) / 1000, bucket]));
  const types = [...new Set(buckets.flatMap((bucket) => Object.keys(bucket.by_event_type)))].sort();

  drawChart(
    'chart-types',
    `${period}|${types.join('\n')}`,
    period,
    types.map((type, i) => ({ label: type, stroke: TYPE_COLOURS[i % TYPE_COLOURS.length] })),
    // Own members only: a type named `constructor` is absent from most buckets, not Object.prototype's.
    [times, ...types.map((type) => times.map((t) => countOf(byTime.get(t)?.by_event_type, type)))],
  );
  drawChart(
    'chart-status',
    period,
    period,
    STATUS_SERIES.map(({ label, stroke }) => ({ label, stroke })),
    [times, ...STATUS_SERIES.map(({ key }) => times.map((t) => byTime.get(t)?.[key] ?? 0))],
  );
}

const utc = (seconds) => uPlot.tzDate(new Date(seconds * 1000), 'Etc/UTC');
const formatHour = uPlot.fmtDate('{HH}:{mm}');
const formatDay = uPlot.fmtDate('{MMM} {D}');
const formatBucket = uPlot.fmtDate('{YYYY}-{MM}-{DD} {HH}:{mm}');

/** 24-hour UTC times, with the date under the first tick and under each midnight. */
function timeLabel(seconds, period, first) {
  const date = utc(seconds);
  if (period !== 'hourly') return formatDay(date);
  return first || (date.getHours() === 0 && date.getMinutes() === 0) ? `${formatHour(date)}\n${formatDay(date)}` : formatHour(date);
}

/** Draws a chart, reusing it when only the data changed (no flicker on each poll). */
function drawChart(id, shape, period, series, data) {
  const container = $(id);
  const existing = state.charts[id];
  const empty = data.slice(1).every((values) => values.every((v) => v === 0));
  if (data[0].length === 0 || empty) {
    existing?.chart.destroy();
    delete state.charts[id];
    const note = document.createElement('p');
    note.className = 'no-data';
    note.textContent = 'No items in this period yet';
    container.replaceChildren(note);
    return;
  }
  if (existing && existing.shape === shape) {
    existing.chart.setData(data);
    return;
  }
  existing?.chart.destroy();
  container.replaceChildren();
  const step = STEP_SECONDS[period];
  const chart = new uPlot(
    {
      width: Math.max(container.clientWidth, 300),
      height: 260,
      tzDate: (ts) => utc(ts),
      scales: {
        // Half a bucket of margin either side keeps a lone bucket visible.
        x: { time: true, range: (_u, min, max) => [min - step / 2, max + step / 2] },
        y: { range: (_u, _min, max) => [0, Math.max(1, max * 1.1)] },
      },
      hooks: { setScale: [(u, key) => key === 'x' && showRange(container, u)] },
      axes: [
        { values: (_u, ticks) => ticks.map((ts, i) => timeLabel(ts, period, i === 0)) },
        { values: (_u, ticks) => ticks.map((v) => (Number.isInteger(v) ? numbers.format(v) : '')) },
      ],
      series: [
        // Away from the cursor, the legend shows the whole window: its span and each series' total.
        { label: 'Bucket (UTC)', value: (_u, ts) => (ts == null ? WINDOW_LABEL[period] : formatBucket(utc(ts))) },
        ...series.map(({ label, stroke }) => ({
          label,
          value: (u, v, seriesIndex, index) => numbers.format(index == null ? sum(u.data[seriesIndex]) : (v ?? 0)),
          stroke,
          width: 2,
          fill: `${stroke}1f`,
          points: { show: data[0].length <= 100, size: 6, fill: stroke },
        })),
      ],
    },
    data,
    container,
  );
  state.charts[id] = { chart, shape };
}

const sum = (values) => values.reduce((total, v) => total + (v ?? 0), 0);

/** The x range drawn, in unix seconds, on the chart's element: the browser test reads it. */
function showRange(container, chart) {
  container.dataset.xMin = String(chart.scales.x.min);
  container.dataset.xMax = String(chart.scales.x.max);
}

window.addEventListener('resize', () => {
  for (const [id, { chart }] of Object.entries(state.charts)) {
    chart.setSize({ width: Math.max($(id).clientWidth, 300), height: 260 });
  }
});

// ---- subscribers, destinations and dead letters ------------------------------------------------------------

async function loadSubscribers() {
  const body = await getJson('/api/admin/subscriptions');
  const rows = body.items.map((s) =>
    row([
      cell(s.name),
      cell(s.position),
      cell(s.lag, s.lag > 0 ? 'behind' : undefined),
      cell(s.parked, s.parked > 0 ? 'parked' : undefined),
    ]),
  );
  $('subscribers').tBodies[0].replaceChildren(...(rows.length > 0 ? rows : [emptyRow(4, 'No subscribers')]));
}

/** Each routing rule's destination: its circuit breaker, backlog, success rate and mean latency. */
async function loadDestinations() {
  // One page of the largest size: a dashboard refreshed every few seconds does not walk them all.
  const response = await call('/api/routing/destinations?limit=1000');
  const body = $('destinations').tBodies[0];
  if (response.status === 404) return body.replaceChildren(emptyRow(5, 'Routing is not deployed'));
  if (!response.ok) throw new Error(`destinations answered ${response.status}`);
  const page = await response.json();
  const items = page.items ?? [];
  const rows = items.map((d) =>
    row([
      ruleCell(d),
      cell(circuitText(d.circuit), d.circuit.state === 'closed' ? undefined : `circuit-${d.circuit.state}`),
      cell(d.pending, d.pending > 0 ? 'behind' : undefined),
      cell(d.success_rate === null ? '–' : `${(d.success_rate * 100).toFixed(1)} %`),
      cell(d.mean_latency_ms === null ? '–' : `${Math.round(d.mean_latency_ms)} ms`),
    ]),
  );
  if (page.next_cursor) rows.push(emptyRow(5, `The first ${items.length} rules; GET /api/routing/destinations pages through all`));
  body.replaceChildren(...(rows.length > 0 ? rows : [emptyRow(5, 'No routing rules')]));
}

/** The rule and its destination type; off when disabled, and said when its condition cannot run (the reason on hover). */
function ruleCell(d) {
  const unevaluable = d.condition_error ? ' (condition cannot run)' : '';
  const td = cell(`${d.rule_name} · ${d.destination_type}${d.is_active ? '' : ' (off)'}${unevaluable}`, unevaluable ? 'behind' : undefined);
  if (d.condition_error) td.title = d.condition_error;
  return td;
}

function circuitText(circuit) {
  if (circuit.state === 'closed') return circuit.failures > 0 ? `closed · ${circuit.failures} failing` : 'closed';
  const probe = circuit.next_probe_at ? ` · probe ${circuit.next_probe_at.slice(11, 19)}` : '';
  return `${circuit.state === 'open' ? 'open' : 'probing'} · ${circuit.failures} failures${probe}`;
}

/** The routing context may not be deployed: a 404 means there is nothing to show, as an empty list does. */
async function loadDeadLetters() {
  const response = await call('/api/routing/dead-letters?limit=10');
  const box = $('dead-letters');
  if (response.status === 404) return box.replaceChildren(none());
  if (!response.ok) throw new Error(`dead letters answered ${response.status}`);
  const body = await response.json();
  const items = Array.isArray(body) ? body : (body.items ?? []);
  if (items.length === 0) return box.replaceChildren(none());
  const list = document.createElement('ul');
  for (const delivery of items.slice(0, 10)) {
    const entry = document.createElement('li');
    const what = document.createElement('strong');
    what.textContent = `${delivery.app_id ?? '?'} · ${delivery.event_type ?? '?'} → ${delivery.destination_type ?? '?'}`;
    const when = document.createElement('span');
    when.className = 'muted';
    when.textContent = ` ${delivery.attempts ?? '?'} attempts · ${delivery.updated_at ?? ''}`;
    const why = document.createElement('div');
    why.className = 'muted';
    why.textContent = `${delivery.delivery_id ?? ''}${delivery.last_error ? ` · ${delivery.last_error}` : ''}`;
    entry.append(what, when, why);
    list.append(entry);
  }
  box.replaceChildren(list);
}

function none() {
  const note = document.createElement('p');
  note.className = 'none';
  note.textContent = 'none';
  return note;
}

// ---- DOM helpers (text only: nothing from the API is ever parsed as HTML) ----------------------

function cell(value, className) {
  const td = document.createElement('td');
  td.textContent = typeof value === 'number' ? numbers.format(value) : String(value);
  if (className) td.className = className;
  return td;
}

function row(cells) {
  const tr = document.createElement('tr');
  tr.append(...cells);
  return tr;
}

function emptyRow(columns, text) {
  const td = document.createElement('td');
  td.colSpan = columns;
  td.textContent = text;
  return row([td]);
}

// ---- start -----------------------------------------------------------------------------------

$('token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const token = $('token').value.trim();
  $('token').value = '';
  if (token) void signIn(token);
});
$('forget-token').addEventListener('click', forgetToken);
$('app').addEventListener('change', (event) => {
  state.app = event.target.value;
  writeLocation();
  void refresh();
});
$('period').addEventListener('change', (event) => {
  state.period = event.target.value;
  writeLocation();
  void refresh();
});
// An address edited by hand (another #app=…) changes only the fragment: the page is not loaded again.
window.addEventListener('hashchange', () => {
  readLocation();
  void refresh();
});
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && state.timer !== undefined) void refresh();
});

readLocation();
if (state.token) void signIn(state.token);
else showLogin();
