#!/usr/bin/env node
// The distributed topology without Docker: one `intake serve` process per role, against a PostgreSQL
// and a NATS (JetStream) that are already running. Usage: node scripts/stack.mjs [role ...]
// See docs/distributed.md.
/* global fetch, AbortSignal -- Node 20 built-ins missing from the repository's lint globals */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { redactedUrls, stackDefaults } from './stack-defaults.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const READY_TIMEOUT_MS = 60_000;
const STOP_GRACE_MS = 10_000;

const fail = (message) => {
  process.stderr.write(`stack: ${message}\n`);
  process.exit(1);
};

// Nothing starts from a missing or stale build: every child would fail the same way.
if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) fail('dist/ is missing: run `npm run build` first');
const rolesModule = join(ROOT, 'dist', 'app', 'roles.js');
if (!existsSync(rolesModule)) fail('dist/ predates the distributed mode: run `npm run build` first');
// The service's own list of roles and ports, so this script cannot drift from it.
const { ROLES, DEFAULT_PORTS } = await import(pathToFileURL(rolesModule).href);

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  process.stdout.write(
    `Usage: node scripts/stack.mjs [role ...]\n\nRoles: ${ROLES.join(', ')} (default: all of them)\n` +
      'Environment: DATABASE_URL, NATS_URL, ADMIN_TOKEN, and anything else the service reads.\n',
  );
  process.exit(0);
}
const requested = args
  .flatMap((arg) => arg.split(','))
  .map((name) => name.trim())
  .filter(Boolean);
const unknown = requested.filter((name) => !ROLES.includes(name));
if (unknown.length > 0) fail(`unknown role ${unknown.join(', ')}; roles are ${ROLES.join(', ')}`);
const roles = (requested.length > 0 ? [...new Set(requested)] : [...ROLES]).sort((a, b) => DEFAULT_PORTS[a] - DEFAULT_PORTS[b]);

const databaseUrl = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
const natsUrl = process.env.NATS_URL || 'nats://127.0.0.1:4222';
const { bindHost, adminToken, generated: tokenGenerated } = stackDefaults(process.env);
if (!/^postgres(ql)?:\/\//.test(databaseUrl))
  fail(`DATABASE_URL must be a postgres:// URL for the distributed mode (got ${redactedUrls(databaseUrl)})`);

const probeHost = ['0.0.0.0', '::', ''].includes(bindHost) ? '127.0.0.1' : bindHost;
const urlHost = probeHost.includes(':') ? `[${probeHost}]` : probeHost;
const urlOf = (role) => `http://${urlHost}:${DEFAULT_PORTS[role]}`;

// Preflight, so a missing dependency or a leftover process gives one clear message instead of eight stack traces.
const pg = endpointOf(databaseUrl, 5432);
if (pg && !(await reachable(pg.host, pg.port))) {
  fail(`PostgreSQL is not reachable at ${pg.host}:${pg.port}: start it, or set DATABASE_URL`);
}
const natsServers = natsUrl
  .split(',')
  .map((url) => endpointOf(url.trim(), 4222))
  .filter(Boolean);
if (natsServers.length > 0 && !(await anyReachable(natsServers))) {
  fail(`NATS is not reachable at ${redactedUrls(natsUrl)}: start nats-server with JetStream (-js), or set NATS_URL`);
}
for (const role of roles) {
  if (await reachable(probeHost, DEFAULT_PORTS[role])) fail(`port ${DEFAULT_PORTS[role]} (${role}) is already in use`);
}
if (tokenGenerated) {
  process.stdout.write(
    `stack: ADMIN_TOKEN is not set, so this run uses a generated one (shown only here):\n\n    ${adminToken}\n\n` +
      'Use it as "Authorization: Bearer <token>"; set ADMIN_TOKEN to choose your own.\n',
  );
}

const useColor = process.stdout.isTTY && !process.env.NO_COLOR;
const COLORS = [36, 33, 35, 32, 34, 91, 96, 93];
const width = Math.max(...roles.map((role) => role.length));

/** role → { child, exited: Promise, code } */
const children = new Map();
let started = false; // until then a failed role fails the whole start (see waitReady)
let stopping = false;
let forced = false;

roles.forEach((role, index) => {
  const label = useColor ? `\x1b[${COLORS[index % COLORS.length]}m${role.padEnd(width)}\x1b[0m` : role.padEnd(width);
  const child = spawn(process.execPath, ['bin/intake.js', 'serve'], {
    cwd: ROOT,
    // Explicit PORT and ROLE override any inherited ones (a PORT in the shell would collide).
    env: {
      ...process.env,
      ROLE: role,
      PORT: String(DEFAULT_PORTS[role]),
      DATABASE_URL: databaseUrl,
      NATS_URL: natsUrl,
      ADMIN_TOKEN: adminToken,
      HOST: bindHost,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry = { child, code: undefined, exited: undefined };
  entry.exited = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      entry.code = code ?? signal;
      resolve();
      if (!started || stopping) return;
      // Like a crashed container: the rest of the stack stays up, which is the point of separate roles.
      process.stderr.write(`stack: ${role} exited (${entry.code}); the other roles keep running\n`);
      if ([...children.values()].every((other) => other.code !== undefined)) process.exit(1);
    });
  });
  // A process that could not be spawned emits no 'exit': count it as exited so nothing waits for it.
  child.once('error', (error) => {
    process.stderr.write(`stack: cannot start ${role}: ${error.message}\n`);
    if (child.pid === undefined) child.emit('exit', error.code ?? 'spawn error', null);
  });
  for (const [stream, out] of [
    [child.stdout, process.stdout],
    [child.stderr, process.stderr],
  ]) {
    createInterface({ input: stream, crlfDelay: Infinity }).on('line', (line) => out.write(`${label} | ${line}\n`));
  }
  children.set(role, entry);
});

process.on('SIGINT', () => void shutdown('SIGINT'));
process.on('SIGTERM', () => void shutdown('SIGTERM'));

const results = await Promise.all(roles.map((role) => waitReady(role)));
const failed = results.filter((result) => result !== true);
if (failed.length > 0) {
  for (const reason of failed) process.stderr.write(`stack: ${reason}\n`);
  await shutdown('startup failure', 1);
}

if (!stopping) {
  started = true;
  const rows = roles.map((role) => [role, urlOf(role)]);
  const pad = Math.max(4, width);
  process.stdout.write(
    `\n${'role'.padEnd(pad)}  url\n${'-'.repeat(pad)}  ${'-'.repeat(rows[0][1].length)}\n` +
      rows.map(([role, url]) => `${role.padEnd(pad)}  ${url}`).join('\n') +
      `\n\nAll ${roles.length} role(s) are ready. Ctrl-C stops them.\n\n`,
  );
}

/** Resolves true once the role answers 200 on /health/ready, or a reason why it never will. */
async function waitReady(role) {
  const entry = children.get(role);
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last = 'no answer';
  while (Date.now() < deadline) {
    if (stopping) return true; // interrupted: not a readiness failure
    if (entry.code !== undefined) return `${role} exited (${entry.code}) before it was ready`;
    try {
      const response = await fetch(`${urlOf(role)}/health/ready`, { signal: AbortSignal.timeout(2000) });
      if (response.status === 200) return true;
      last = `${response.status} ${await response.text()}`;
    } catch (error) {
      last = error.cause?.code ?? error.message;
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return `${role} was not ready after ${READY_TIMEOUT_MS / 1000} s (last: ${last})`;
}

/** SIGTERM to every role, SIGKILL to those still running after the grace period; a second signal kills at once. */
async function shutdown(reason, exitCode = 0) {
  const live = [...children.entries()].filter(([, entry]) => entry.code === undefined);
  if (stopping) {
    forced = true;
    for (const [, entry] of live) entry.child.kill('SIGKILL');
    return;
  }
  stopping = true;
  if (live.length > 0) process.stdout.write(`\nstack: stopping ${live.map(([role]) => role).join(', ')} (${reason})\n`);
  for (const [, entry] of live) entry.child.kill('SIGTERM');
  const timer = setTimeout(() => {
    forced = true;
    for (const [role, entry] of children) {
      if (entry.code !== undefined) continue;
      process.stderr.write(`stack: ${role} did not stop within ${STOP_GRACE_MS / 1000} s; killing it\n`);
      entry.child.kill('SIGKILL');
    }
  }, STOP_GRACE_MS);
  await Promise.all([...children.values()].map((entry) => entry.exited));
  clearTimeout(timer);
  process.exit(forced ? 1 : exitCode);
}

/** host and port of a URL, or undefined when it names no TCP host (e.g. a Unix socket in ?host=). */
function endpointOf(url, defaultPort) {
  try {
    const parsed = new URL(url);
    if (!parsed.hostname) return undefined;
    return { host: parsed.hostname.replace(/^\[|\]$/g, ''), port: Number(parsed.port) || defaultPort };
  } catch {
    return undefined;
  }
}

function reachable(host, port) {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 2000 });
    const done = (ok) => {
      socket.destroy();
      resolve(ok);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}

async function anyReachable(endpoints) {
  for (const { host, port } of endpoints) if (await reachable(host, port)) return true;
  return false;
}
