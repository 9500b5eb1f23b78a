import type pg from 'pg';
import { UnavailableError } from '../errors.js';

/**
 * The pool's own timeout reads the same whether it waited for a busy pool or for a server that does
 * not answer a new connection, and both answered "the database is unreachable". The pool's fill at
 * that moment tells them apart: a saturated server says it is busy (503 `storage.busy`), and the
 * error keeps its meaning across the storage thread's boundary.
 */
export function reportBusyPool(pool: pg.Pool, poolSize: number): void {
  const connect = pool.connect.bind(pool);
  pool.connect = ((callback?: Parameters<typeof connect>[0]) => {
    if (callback) return connect(callback);
    return connect().catch((error: unknown) => {
      const timedOut = /timeout exceeded when trying to connect/i.test((error as Error | undefined)?.message ?? '');
      if (!timedOut || pool.totalCount < poolSize) throw error;
      const busy = new UnavailableError(
        'storage.busy',
        `all ${poolSize} database connections of this server are in use (DATABASE_POOL_SIZE); retry shortly`,
        1,
      );
      busy.cause = error;
      throw busy;
    });
  }) as typeof pool.connect;
}
