import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { microsPer, sampleProcess } from './proc-sampler.js';

const onLinux = process.platform === 'linux';

/** A fixed amount of CPU work (about 0.4 s per 3e8 on the project's machine), whatever else competes for the cores. */
const WORK = `(n) => { let x = 0; for (let i = 0; i < n; i++) x += i % 7; return x; }`;
// The same function runs in the worker, which gets it as text.
const work = new Function(`return ${WORK}`)() as (n: number) => number;

describe.runIf(onLinux)('CPU by thread', () => {
  it('tells the main thread, the busiest other thread and the rest apart', async () => {
    const sampler = sampleProcess(process.pid, 50);
    // It stays alive until sampled (listening to its port keeps it so): a thread that has exited is gone
    // from /proc with its figures, and one that ended before the sampler stopped counted nothing.
    const worker = new Worker(
      `const { parentPort } = require('node:worker_threads'); parentPort.on('message', () => {}); parentPort.postMessage((${WORK})(3e8));`,
      { eval: true },
    );
    const spun = new Promise((resolve) => worker.once('message', resolve));
    work(5e7);
    await spun;
    const { threads } = sampler.stop();
    await worker.terminate();
    if (threads === null) throw new Error('no thread figures on Linux');
    // Clock ticks are 10 ms, and machines differ in speed: bounds well below the work's CPU time here.
    expect(threads.busiest, JSON.stringify(threads)).toBeGreaterThan(0.1);
    expect(threads.main).toBeGreaterThan(0.01);
    expect(threads.busiest).toBeGreaterThan(threads.main);
    expect(threads.busiest).toBeGreaterThan(threads.rest);
  });

  it('gives microseconds per unit of work, HTTP · storage · rest', () => {
    expect(microsPer({ main: 0.5, busiest: 1, rest: 0.25 }, 10_000)).toBe('50 · 100 · 25');
    expect(microsPer({ main: 0.5, busiest: 1, rest: 0.25 }, 0)).toBeNull();
    expect(microsPer(null, 10)).toBeNull();
  });
});
