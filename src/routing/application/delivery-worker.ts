import type { DeliveryReplayed } from '../../shared/contracts/routing-events.js';
import { dataStreamId } from '../../shared/contracts/data-events.js';
import { makeRoom } from '../../shared/bounded-map.js';
import { ConflictError, NotFoundError } from '../../shared/errors.js';
import type { StoreTransaction } from '../../shared/event-store/event-store.js';
import { admit, closedBreaker, probing, type Breaker } from '../domain/circuit-breaker.js';
import { deliveryAttempts, type AttemptDeps } from './delivery-attempts.js';
import { deliveryState, type Delivery } from './ports.js';

export type { AttemptObservation } from './delivery-attempts.js';

export interface DeliveryWorkerDeps extends AttemptDeps {
  /** Attempts in flight at once, across destinations (32 by default). */
  readonly concurrency?: number;
  /** How long a stop waits for attempts in flight (2 s by default). */
  readonly stopWaitMs?: number;
  /** An attempt that took this long marks its destination slow (5 s by default). */
  readonly slowAttemptMs?: number;
}

export interface DeliveryWorker {
  start(): void;
  stop(): Promise<void>;
  /** New deliveries are due: look now rather than at the next poll. */
  wake(): void;
  /** Sends a dead-lettered delivery again, keeping its id. */
  replay(deliveryId: string): Promise<Delivery>;
  /** The same for many, in one transaction: answers how many were still dead-lettered (the others are left). */
  replayMany(deliveryIds: readonly string[]): Promise<number>;
  /** Resolves when nothing is due and nothing is in flight (for tests and shutdown). */
  idle(): Promise<void>;
}

// A lease longer than any attempt can take (15 s timeout) keeps other workers off a delivery in flight.
const LEASE_MS = 120_000;
const MAX_SLEEP_MS = 1000;
export const DEFAULT_DELIVERY_CONCURRENCY = 32;
/**
 * A stop waits this long for attempts in flight, not their 15 s timeout: a receiver that hangs would
 * hold the shutdown past the 10 s a container is given. An attempt left in flight was written down
 * before it went, and the next start takes it as interrupted and sends it again.
 */
const STOP_WAIT_MS = 2_000;

/** The most attempts one destination may have in flight: a quarter of the worker's. */
export const perDestinationLimit = (concurrency: number) => Math.max(1, Math.floor(concurrency / 4));

const SLOW_ATTEMPT_MS = 5_000;
/** Destinations remembered as slow at most: past it the oldest are taken for fast until they prove slow again. */
const REMEMBERED_SLOW = 1_000;

/**
 * Sends due deliveries off the log, never on the ingest path: claims them with a lease, admits each
 * through its destination's circuit breaker and leaves each attempt to `deliveryAttempts`. It runs up
 * to `concurrency` attempts at once, at most a quarter of them to one destination. A destination's
 * first attempt in flight may take any free slot, but its further ones only the first three quarters:
 * the last quarter stays for destinations with nothing in flight. A destination whose last attempt
 * took `slowAttemptMs` or more (a receiver that hangs until the timeout) is slow: slow ones together
 * have at most half the slots, so however many receivers hang (forty rules of one application to a
 * dead host filled every slot, and every other destination waited minutes for their circuits to
 * open), the others keep half the worker once each slow one has shown itself. At start it takes back
 * what it left in flight before a stop.
 */
export function deliveryWorker(deps: DeliveryWorkerDeps): DeliveryWorker {
  const concurrency = deps.concurrency ?? DEFAULT_DELIVERY_CONCURRENCY;
  const perDestination = perDestinationLimit(concurrency);
  const sharedSlots = Math.max(1, concurrency - perDestination);
  const slowSlots = Math.max(1, Math.floor(concurrency / 2));
  const slowAttemptMs = deps.slowAttemptMs ?? SLOW_ATTEMPT_MS;
  const slowRules = new Set<string>();
  let slowInFlight = 0;
  const inFlight = new Set<Promise<void>>();
  let running = false;
  let loop: Promise<void> | undefined;
  let wakeUp: (() => void) | undefined;
  let idleWaiters: Array<() => void> = [];

  /**
   * A wake-up that comes while the worker is claiming (not sleeping) is kept: the claim may have read
   * before the deliveries that woke it were written, and the next due time looks only after now.
   */
  let woken = false;
  const wake = () => {
    if (wakeUp) wakeUp();
    else woken = true;
  };

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      if (woken) {
        woken = false;
        resolve();
        return;
      }
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        wakeUp = undefined;
        resolve();
      }
      wakeUp = done;
    });

  const inFlightByRule = new Map<string, number>();
  const breakerCache = new Map<string, Breaker>();
  const inFlightTo = (ruleId: string) => inFlightByRule.get(ruleId) ?? 0;
  /** The circuit's answer, within the destination's share of the worker. */
  const admission = (ruleId: string, breaker: Breaker, now: Date) => {
    const mine = inFlightTo(ruleId);
    if (mine >= perDestination || (mine > 0 && inFlight.size >= sharedSlots)) return 'hold';
    if (slowInFlight >= slowSlots && slowRules.has(ruleId)) return 'hold';
    return admit(breaker, mine, now, deps.breakerPolicy);
  };

  let abandoned = false;
  const attempts = deliveryAttempts(deps, () => abandoned);
  /** Whether this worker's leases and in-flight attempts left by a start or a fault have been taken back. */
  let recovered = false;

  const launch = (delivery: Delivery) => {
    inFlightByRule.set(delivery.ruleId, inFlightTo(delivery.ruleId) + 1);
    const slow = slowRules.has(delivery.ruleId);
    if (slow) slowInFlight++;
    const startedAt = performance.now();
    const task = attempts
      .attempt(delivery)
      .then((breaker) => {
        if (breaker) breakerCache.set(delivery.ruleId, breaker);
      })
      .catch((error: unknown) => {
        recovered = false;
        deps.logger.error(
          { err: error, delivery_id: delivery.deliveryId },
          'could not record a delivery attempt; it will be retried once the worker has taken its leases back',
        );
      })
      .finally(() => {
        if (slow) slowInFlight--;
        slowRules.delete(delivery.ruleId);
        if (performance.now() - startedAt >= slowAttemptMs) {
          makeRoom(slowRules, REMEMBERED_SLOW);
          slowRules.add(delivery.ruleId);
        }
        const left = inFlightTo(delivery.ruleId) - 1;
        if (left > 0) inFlightByRule.set(delivery.ruleId, left);
        else {
          // What it knows of the circuit serves only rules with attempts in flight; a claim reads it again.
          inFlightByRule.delete(delivery.ruleId);
          breakerCache.delete(delivery.ruleId);
        }
        inFlight.delete(task);
        wake();
      });
    inFlight.add(task);
  };

  /**
   * Rules this worker may not send more to now, among those it has attempts in flight to: their circuit
   * allows no more, or they have their share. An idle rule is left to the claim, which reads its circuit
   * from the database: what this worker remembers of it may be stale (the circuit of a rule whose
   * destination changed starts closed again).
   */
  const saturatedRules = (now: Date) => {
    const busy = slowInFlight >= slowSlots ? new Set([...inFlightByRule.keys(), ...slowRules]) : inFlightByRule.keys();
    return [...busy].filter((ruleId) => admission(ruleId, breakerCache.get(ruleId) ?? closedBreaker, now) === 'hold');
  };

  /** Sends what the circuit breakers admit, takes the probe of a circuit due one, and gives the rest back. */
  const dispatch = async (claimed: readonly Delivery[], now: Date): Promise<number> => {
    const ruleIds = [...new Set(claimed.map((d) => d.ruleId))];
    const fresh = await deps.breakers(deps.db).get(ruleIds);
    for (const ruleId of ruleIds) breakerCache.set(ruleId, fresh.get(ruleId) ?? closedBreaker);
    // A probe of a destination that is down fails: the delivery tried least takes it, so that probing
    // does not use up the retries of the one tried most (claimed first), which a long outage dead-lettered.
    const probeOf = new Map<string, Delivery>();
    for (const delivery of claimed) {
      const candidate = probeOf.get(delivery.ruleId);
      if (!candidate || delivery.attempts < candidate.attempts) probeOf.set(delivery.ruleId, delivery);
    }
    const held: string[] = [];
    let launched = 0;
    for (const delivery of claimed) {
      const breaker = fresh.get(delivery.ruleId) ?? closedBreaker;
      const admitted = admission(delivery.ruleId, breakerCache.get(delivery.ruleId) ?? breaker, now);
      if (admitted === 'probe' && probeOf.get(delivery.ruleId) === delivery) {
        const probe = probing(breaker, new Date(now.getTime() + LEASE_MS));
        if (await deps.breakers(deps.db).startProbe(delivery.ruleId, probe, now.toISOString(), deps.workerId)) {
          breakerCache.set(delivery.ruleId, probe);
          launch(delivery);
          launched++;
          continue;
        }
      }
      if (admitted === 'send') {
        launch(delivery);
        launched++;
      } else held.push(delivery.deliveryId);
    }
    await deps.deliveries(deps.db).release(held, deps.workerId);
    return launched;
  };

  const nextWakeUp = async (now: Date) => {
    const iso = now.toISOString();
    const [due, probe] = await Promise.all([
      deps.deliveries(deps.db).nextDueAt(iso, saturatedRules(now)),
      deps.breakers(deps.db).nextProbeAt(iso),
    ]);
    const times = [due, probe].filter((t): t is string => t !== undefined).map((t) => Date.parse(t));
    return times.length === 0 ? undefined : Math.min(...times);
  };

  /** A dead-lettered delivery pending again, with its `DeliveryReplayed`; undefined when it is not dead-lettered. */
  const requeue = async (tx: StoreTransaction, deliveryId: string, now: string): Promise<Delivery | undefined> => {
    const delivery = await deps.deliveries(tx.db).requeue(deliveryId, now);
    if (!delivery) return undefined;
    const replayed: DeliveryReplayed = {
      type: 'DeliveryReplayed',
      data: {
        item_id: delivery.itemId,
        delivery_id: deliveryId,
        rule_id: delivery.ruleId,
        attempt: delivery.attempts + 1,
        replayed_at: now,
      },
    };
    await tx.append({ streamId: dataStreamId(delivery.itemId), events: [replayed] });
    return delivery;
  };

  const run = async () => {
    while (running) {
      try {
        // With nothing in flight, every lease and in-flight attempt of this worker is left from a start
        // or a fault: taken back now rather than when its lease ends, two minutes on.
        if (!recovered && inFlight.size === 0) {
          await attempts.recover();
          recovered = true;
        }
        // What woke the worker before this claim is seen by it.
        woken = false;
        const free = concurrency - inFlight.size;
        const now = deps.clock.now();
        const claimed =
          free > 0
            ? await deps.deliveries(deps.db).claimDue({
                now: now.toISOString(),
                leaseUntil: new Date(now.getTime() + LEASE_MS).toISOString(),
                limit: free,
                owner: deps.workerId,
                excludeRules: saturatedRules(now),
                perRule: perDestination,
              })
            : [];
        if (claimed.length > 0 && (await dispatch(claimed, now)) > 0) continue;
        if (inFlight.size === 0) {
          const waiters = idleWaiters;
          idleWaiters = [];
          for (const done of waiters) done();
        }
        const next = await nextWakeUp(deps.clock.now());
        const untilDue = next === undefined ? MAX_SLEEP_MS : next - deps.clock.now().getTime();
        await sleep(Math.max(5, Math.min(MAX_SLEEP_MS, untilDue)));
      } catch (error) {
        deps.logger.error({ err: error }, 'delivery worker failed; retrying');
        // Deliveries claimed before the fault may still be leased to this worker.
        recovered = false;
        await sleep(MAX_SLEEP_MS);
      }
    }
  };

  return {
    start() {
      if (running) return;
      running = true;
      abandoned = false;
      loop = run();
    },
    async stop() {
      running = false;
      wake();
      await loop;
      if (inFlight.size === 0) return;
      let timer: NodeJS.Timeout | undefined;
      const waited = new Promise<false>((resolve) => (timer = setTimeout(resolve, deps.stopWaitMs ?? STOP_WAIT_MS, false)));
      const settled = await Promise.race([Promise.all(inFlight).then(() => true), waited]);
      clearTimeout(timer);
      if (settled) return;
      abandoned = true;
      deps.logger.warn(
        { in_flight: inFlight.size },
        'stopping with delivery attempts still in flight: each goes again, as interrupted, at the next start',
      );
    },
    wake,
    async replay(deliveryId) {
      const now = deps.clock.now().toISOString();
      const requeued = await deps.store.transaction((tx) => requeue(tx, deliveryId, now));
      if (!requeued) {
        // A delivery that exists but is not dead-lettered cannot be replayed: a conflict with its state, not a missing one.
        const existing = await deps.deliveries(deps.db).get(deliveryId);
        if (existing) {
          throw new ConflictError(
            'routing.not-dead-lettered',
            `delivery ${deliveryId} is ${deliveryState(existing)}: only a dead-lettered delivery can be replayed`,
          );
        }
        throw new NotFoundError('routing.delivery-not-found', `no delivery ${deliveryId}`);
      }
      wake();
      return requeued;
    },
    async replayMany(deliveryIds) {
      if (deliveryIds.length === 0) return 0;
      const now = deps.clock.now().toISOString();
      // One commit (and one sync) for the lot: a transaction each took 38 s for 3,000 dead letters.
      const requeued = await deps.store.transaction(async (tx) => {
        let count = 0;
        for (const deliveryId of deliveryIds) if (await requeue(tx, deliveryId, now)) count++;
        return count;
      });
      if (requeued > 0) wake();
      return requeued;
    },
    idle() {
      return new Promise<void>((resolve) => {
        idleWaiters.push(resolve);
        wake();
      });
    },
  };
}
