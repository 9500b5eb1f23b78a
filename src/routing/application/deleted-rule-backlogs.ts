import { setTimeout as sleep } from 'node:timers/promises';
import type { Kysely } from 'kysely';
import type { Logger } from 'pino';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import type { AppendRequest, EventStore } from '../../shared/event-store/event-store.js';
import { deadLetterUnattempted, RULE_DELETED } from '../domain/delivery.js';
import type { DeletedRuleBacklogsFor, DeliveryStore, DeliveryStoreFor, DeliverySummary } from './ports.js';

/**
 * Deliveries of a deleted rule dead-lettered a transaction: each is an update and an event, and the
 * writer (SQLite has one) is held while they commit. 250 take about 10 ms.
 */
export const DEAD_LETTER_SLICE = 250;

export interface DeadLetteredSlice {
  readonly given: readonly DeliverySummary[];
  /** Their events, to append in the same transaction. */
  readonly appends: readonly AppendRequest[];
  /** The slice was full: more may wait. */
  readonly more: boolean;
}

/** One slice of a deleted rule's waiting deliveries dead-lettered, with the events that say so. */
export async function deadLetterSlice(
  deliveries: DeliveryStore,
  ruleId: string,
  deletedAt: string,
  limit: number,
): Promise<DeadLetteredSlice> {
  const given = await deliveries.deadLetterWaiting(ruleId, deletedAt, RULE_DELETED, limit);
  // A replay job's delivery never tried was never shown on its item (as one its job's cancel withdraws).
  const shown = given.filter((delivery) => delivery.replayJobId === null || delivery.attempts > 0);
  const appends = shown.map((delivery) => ({
    streamId: dataStreamId(delivery.itemId),
    events: [deadLetterUnattempted(delivery, RULE_DELETED, new Date(deletedAt))],
  }));
  return { given, appends, more: given.length >= limit };
}

export interface DeletedRuleSweeperDeps {
  readonly store: EventStore;
  readonly db: Kysely<object>;
  readonly deliveries: DeliveryStoreFor;
  readonly backlogs: DeletedRuleBacklogsFor;
  readonly logger: Pick<Logger, 'warn'>;
  /** A slice committed: its deliveries are dead letters now (the metrics). */
  readonly onGivenUp?: (ruleId: string, given: readonly DeliverySummary[]) => void;
  readonly slice?: number;
}

export interface DeletedRuleSweeper {
  start(): void;
  /** A delete left deliveries behind: they are dead-lettered now, not at the next start. */
  wake(): void;
  /** Ends the sweep under way after its current slice. */
  stop(): Promise<void>;
}

const FIRST_RETRY_MS = 1000;
const LAST_RETRY_MS = 60_000;

/**
 * Dead-letters what deletes left of their rules' waiting deliveries, a slice a transaction with as
 * long a pause after each, so that other writes go between them however large the backlog. A
 * sweep that fails is tried again with backoff, and one cut short by a stop goes on at the next start.
 */
export function deletedRuleSweeper(deps: DeletedRuleSweeperDeps): DeletedRuleSweeper {
  const slice = deps.slice ?? DEAD_LETTER_SLICE;
  let running = false;
  let stopped = true;
  let again = false;
  let failures = 0;
  let retry: NodeJS.Timeout | undefined;
  let sweep: Promise<void> = Promise.resolve();

  const sweepRule = async (ruleId: string, deletedAt: string) => {
    let dead = 0;
    for (let more = true; more && !stopped;) {
      const started = performance.now();
      const done = await deps.store.transaction(async (tx) => {
        const given = await deadLetterSlice(deps.deliveries(tx.db), ruleId, deletedAt, slice);
        if (given.appends.length > 0) await tx.appendMany(given.appends);
        if (!given.more) await deps.backlogs(tx.db).remove(ruleId);
        return given;
      });
      deps.onGivenUp?.(ruleId, done.given);
      dead += done.given.length;
      more = done.more;
      // As long again for everything else: the items' views take in these events, and requests keep
      // their writes going, at half their pace at worst while a backlog of a million goes.
      if (more) await sleep(performance.now() - started);
    }
    if (dead > 0)
      deps.logger.warn({ rule_id: ruleId, deliveries: dead }, 'the rule was deleted: more of its waiting deliveries were dead-lettered');
  };

  const run = () => {
    if (running || stopped) {
      again = true;
      return;
    }
    running = true;
    again = false;
    sweep = (async () => {
      for (const { ruleId, deletedAt } of await deps.backlogs(deps.db).list()) {
        if (stopped) return;
        await sweepRule(ruleId, deletedAt);
      }
    })().then(
      () => {
        failures = 0;
        running = false;
        if (again && !stopped) run();
      },
      (error: unknown) => {
        running = false;
        failures += 1;
        const delayMs = Math.min(LAST_RETRY_MS, FIRST_RETRY_MS * 2 ** (failures - 1));
        deps.logger.warn({ err: error, retry_in_ms: delayMs }, 'could not dead-letter the deliveries a deleted rule left; trying again');
        if (stopped) return;
        retry = setTimeout(run, delayMs);
        retry.unref();
      },
    );
  };

  return {
    start() {
      if (!stopped) return;
      stopped = false;
      run();
    },
    wake() {
      clearTimeout(retry);
      run();
    },
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await sweep;
    },
  };
}
