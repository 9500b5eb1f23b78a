import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import type { BenchContext } from '../scenarios/types.js';
import type { ManagedChild } from './children.js';
import { freePort, waitForHealth } from './net.js';

const HOST = '127.0.0.1';

export interface NatsServer {
  readonly url: string;
  readonly child: ManagedChild;
  /** Stops the server and removes its JetStream store. */
  stop(): Promise<void>;
}

/** A private nats-server with JetStream, its store in a temporary directory of its own. */
export async function startNats(ctx: BenchContext, binary: string): Promise<NatsServer> {
  const [port, monitorPort] = [await freePort(HOST), await freePort(HOST)];
  const storeDir = mkdtempSync(join(ctx.tmpDir, 'nats-'));
  const child = ctx.children.spawn({
    name: 'nats-server',
    command: binary,
    args: ['-a', HOST, '-p', String(port), '-m', String(monitorPort), '-js', '-sd', storeDir],
  });
  await waitForHealth(`http://${HOST}:${monitorPort}/healthz`, child);
  return {
    url: `nats://${HOST}:${port}`,
    child,
    async stop() {
      await ctx.children.stop(child);
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

/** DROP SCHEMA ... CASCADE for each of them (names the bench made up itself, so quoting is enough). */
export async function dropSchemas(databaseUrl: string, schemas: readonly string[]): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    for (const schema of schemas) await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await client.end();
  }
}
