import type { Logger } from 'pino';
import { ConfigError, type Config } from '../app/config.js';
import { buildDistributed } from '../app/distributed.js';
import { resolveAdminDigest } from '../app/admin-token.js';
import { buildEmbedded } from '../app/embedded.js';

export async function serve(config: Config, logger: Logger): Promise<void> {
  if (config.distributed) {
    // Every role of a distributed deployment must accept the same token: it cannot be generated per process.
    if (!config.adminToken) throw new ConfigError('the distributed mode needs ADMIN_TOKEN, shared by every role');
  }
  const adminDigest = resolveAdminDigest(config.adminToken, config.dataDir, (token) =>
    process.stdout.write(
      `\nNo ADMIN_TOKEN was set, so one was generated. It is shown only this once; only its digest is stored:\n\n    ${token}\n\n` +
        `Use it as "Authorization: Bearer <token>". Set ADMIN_TOKEN to choose your own.\n\n`,
    ),
  );
  const intake = config.distributed
    ? await buildDistributed({ config, logger, adminDigest })
    : await buildEmbedded({ config, logger, adminDigest, storage: config.storageThread ? 'thread' : 'inline' });
  await intake.app.listen({ port: config.port, host: config.host });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down: finishing in-flight requests and commits');
    intake.close().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
}
