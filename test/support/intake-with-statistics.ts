import { pino } from 'pino';
import type { Intake } from '../../src/app/embedded.js';
import type { Clock } from '../../src/shared/clock.js';
import { BUILT_IN_PROCESSORS, type ProcessorRegistry } from '../../src/processing/domain/pipeline.js';
import { inProcessSubscriptions } from '../../src/shared/subscriptions/in-process-subscriptions.js';
import { ADMIN_TOKEN, auth, startTestIntake } from './embedded-intake.js';

export { ADMIN_TOKEN, auth };

export interface StatisticsIntakeOptions {
  readonly clock?: Clock;
  readonly processors?: ProcessorRegistry;
  /** Names of the subscribers `subscriptions` runs (all by default): a test can hold a stage back. */
  readonly running?: readonly string[];
  readonly startSubscribers?: boolean;
}

export interface StatisticsIntake extends Intake {
  /** Runs the named subscribers on their own until they reach the head, then stops them. */
  runOnce(names: readonly string[]): Promise<void>;
  dispose(): Promise<void>;
}

/** The embedded Intake with a handle on its pipeline stages, for the statistics tests. */
export async function startStatisticsIntake(options: StatisticsIntakeOptions = {}): Promise<StatisticsIntake> {
  const running = options.running;
  const intake = await startTestIntake(
    {},
    {
      ...(options.clock ? { clock: options.clock } : {}),
      ...(options.processors ? { processors: options.processors } : {}),
      ...(running ? { runSubscribers: (name: string) => running.includes(name) } : {}),
      startSubscribers: options.startSubscribers !== false,
    },
  );
  return {
    ...intake,
    async runOnce(names) {
      const stage = inProcessSubscriptions({
        store: intake.store,
        db: intake.db,
        clock: options.clock ?? { now: () => new Date() },
        logger: pino({ level: 'silent' }),
        subscribers: intake.subscribers.filter((s) => names.includes(s.name)),
      });
      stage.start();
      await stage.caughtUp();
      await stage.stop();
    },
  };
}

export const adminJson = { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' };

/** POST /ingest; answers the new item's id. */
export async function ingestItem(intake: StatisticsIntake, partnerId: string, eventType: string, payload: object): Promise<string> {
  const response = await intake.app.inject({
    method: 'POST',
    url: '/ingest',
    headers: adminJson,
    payload: { partner_id: partnerId, event_type: eventType, payload },
  });
  if (response.statusCode !== 201) throw new Error(`ingest answered ${response.statusCode}: ${response.body}`);
  return response.json().id;
}

/** Makes items of `eventType` without a numeric `total` invalid (validation answers DataInvalid). */
export async function requireTotal(intake: StatisticsIntake, eventType: string): Promise<void> {
  const response = await intake.app.inject({
    method: 'PUT',
    url: `/api/schemas/${eventType}`,
    headers: adminJson,
    payload: { schema: { type: 'object', required: ['total'], properties: { total: { type: 'number' } } } },
  });
  if (response.statusCode !== 200) throw new Error(`schema answered ${response.statusCode}: ${response.body}`);
}

/** Processors for tests: `explode` fails the items whose payload has `boom: true`. */
export const explodingProcessors: ProcessorRegistry = {
  ...BUILT_IN_PROCESSORS,
  explode: () => ({
    name: 'explode',
    run: (input) => (input.boom ? { status: 'failed', reason: 'boom' } : { status: 'ok', output: input }),
  }),
};

/** Items of `eventType` go through `explode` (see explodingProcessors). */
export async function explodeOnBoom(intake: StatisticsIntake, eventType: string): Promise<void> {
  const response = await intake.app.inject({
    method: 'PUT',
    url: `/api/pipelines/${eventType}`,
    headers: adminJson,
    payload: { steps: [{ processor: 'explode' }] },
  });
  if (response.statusCode !== 200) throw new Error(`pipeline answered ${response.statusCode}: ${response.body}`);
}
