import { CliError } from './cli-error.js';
import { table, type Output } from './output.js';

/**
 * `intake apps|keys|rules …` talk to a running Intake over its HTTP API with the admin token, exactly
 * as curl would: the server keeps its caches (write keys, compiled rules) and its validation, and the
 * commands work the same against an embedded or a distributed deployment.
 */
export interface AdminTarget {
  /** Base URL of the server, e.g. http://127.0.0.1:8000. */
  readonly url: string;
  readonly token: string | undefined;
}

type Json = Record<string, unknown>;

async function call(target: AdminTarget, method: string, path: string, body?: Json): Promise<unknown> {
  if (!target.token) throw new CliError('set ADMIN_TOKEN (environment or .env) to the admin token of the server');
  let response: Response;
  try {
    // Appended, not resolved: INTAKE_URL=http://host/intake keeps its /intake behind a proxy.
    response = await fetch(`${target.url.replace(/\/+$/, '')}${path}`, {
      method,
      headers: { authorization: `Bearer ${target.token}`, ...(body ? { 'content-type': 'application/json' } : {}) },
      body: body ? JSON.stringify(body) : undefined,
      signal: AbortSignal.timeout(30_000),
    });
  } catch (error) {
    throw new CliError(`no Intake answers at ${target.url} (${(error as Error).message}): start it with "intake serve", or set INTAKE_URL`);
  }
  // Every answer of Intake's carries its correlation id. Another server (a proxy's maintenance page,
  // a single-page app's fallback) answering 200 must not pass for a key revoked or an app created.
  const notIntake = () =>
    new CliError(`${target.url} is not Intake's API (${method} ${path} answered HTTP ${response.status}): check INTAKE_URL`);
  if (!response.headers.has('x-correlation-id')) throw notIntake();
  if (response.status === 204) return undefined;
  const answer = (await response.json().catch(() => undefined)) as Json | undefined;
  if (response.status === 401) throw new CliError(`${target.url} refused the admin token: set ADMIN_TOKEN to the server's token`);
  if (!response.ok)
    throw new CliError(`${method} ${path} answered ${response.status}: ${String(answer?.detail ?? answer?.title ?? 'error')}`);
  if (typeof answer !== 'object' || answer === null || Array.isArray(answer)) throw notIntake();
  return answer;
}

/** An answer that must be a document (a create, a page): a 204 where one was due is no answer of Intake's. */
async function document(target: AdminTarget, method: string, path: string, body?: Json): Promise<Json> {
  const answer = await call(target, method, path, body);
  if (answer === undefined)
    throw new CliError(`${target.url} is not Intake's API (${method} ${path} answered no document): check INTAKE_URL`);
  return answer as Json;
}

const text = (value: unknown): string => (value === null || value === undefined ? '-' : String(value));
const segment = (value: string) => encodeURIComponent(value);

/** Every item of a paged list, following next_cursor to the last page. */
async function everyPage(target: AdminTarget, path: string): Promise<Json[]> {
  const items: Json[] = [];
  let cursor: string | null = null;
  do {
    const query: string = `${path}?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`;
    const page = (await document(target, 'GET', query)) as { items?: unknown; next_cursor?: unknown };
    if (!Array.isArray(page.items))
      throw new CliError(`${target.url} is not Intake's API (GET ${query} answered no list): check INTAKE_URL`);
    items.push(...(page.items as Json[]));
    cursor = typeof page.next_cursor === 'string' ? page.next_cursor : null;
  } while (cursor);
  return items;
}

export async function appsCreate(target: AdminTarget, output: Output, name: string, appId: string | undefined): Promise<void> {
  const app = (await document(target, 'POST', '/api/applications', { name, ...(appId !== undefined ? { app_id: appId } : {}) })) as Json;
  output.result(`created application ${text(app.app_id)} (${text(app.name)})`, app);
}

export async function appsList(target: AdminTarget, output: Output): Promise<void> {
  const items = await everyPage(target, '/api/applications');
  output.result(
    table(
      ['APP_ID', 'NAME', 'CREATED_AT'],
      items.map((app) => [text(app.app_id), text(app.name), text(app.created_at)]),
    ),
    { items },
  );
}

export async function keysCreate(target: AdminTarget, output: Output, appId: string, name: string | undefined): Promise<void> {
  const key = (await document(target, 'POST', `/api/applications/${segment(appId)}/keys`, name !== undefined ? { name } : {})) as Json;
  output.result(
    `write key ${text(key.key_id)} for application ${appId}. It is shown only this once; Intake keeps its digest:\n\n    ${text(key.key)}\n`,
    key,
  );
}

export async function keysList(target: AdminTarget, output: Output, appId: string): Promise<void> {
  const items = await everyPage(target, `/api/applications/${segment(appId)}/keys`);
  output.result(
    table(
      ['KEY_ID', 'NAME', 'CREATED_AT', 'REVOKED_AT'],
      items.map((key) => [text(key.key_id), text(key.name), text(key.created_at), text(key.revoked_at)]),
    ),
    { items },
  );
}

export async function keysRevoke(target: AdminTarget, output: Output, appId: string, keyId: string): Promise<void> {
  await call(target, 'DELETE', `/api/applications/${segment(appId)}/keys/${segment(keyId)}`);
  output.result(`revoked write key ${keyId} of application ${appId}`, { app_id: appId, key_id: keyId, revoked: true });
}

export async function rulesList(target: AdminTarget, output: Output, appId: string): Promise<void> {
  const items = await everyPage(target, `/api/routing-rules/app/${segment(appId)}`);
  // A rule whose stored condition today's limits refuse is left out of routing: said under the table.
  const unrunnable = items.flatMap((rule) =>
    rule.condition_error
      ? [`rule ${text(rule.rule_id)} cannot run its condition: ${text(rule.condition_error)} (PUT the rule to fix it)`]
      : [],
  );
  output.result(
    [
      table(
        ['RULE_ID', 'NAME', 'EVENT_TYPE', 'DESTINATION', 'PRIORITY', 'ACTIVE'],
        items.map((rule) => [
          text(rule.rule_id),
          text(rule.rule_name),
          text(rule.event_type_filter ?? '*'),
          text(rule.destination_type),
          text(rule.priority),
          rule.is_active ? (rule.condition_error ? 'yes, cannot run' : 'yes') : 'no',
        ]),
      ),
      ...unrunnable,
    ].join('\n'),
    { items },
  );
}
