import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { recentEvents } from './recent-events.js';

type Row = { position: number };
const at = (...positions: number[]): Row[] => positions.map((position) => ({ position }));
const positions = (rows: Row[] | undefined) => rows?.map((row) => row.position);

describe('recent events', () => {
  it('answers reads inside the tail and leaves the rest to the database', () => {
    const tail = recentEvents<Row>({ events: 100, bytes: 1e9, sizeOf: () => 1 });
    tail.add(at(5, 6, 7));
    tail.add(at(8));
    expect(positions(tail.after(4, 10))).toEqual([5, 6, 7, 8]);
    expect(positions(tail.after(6, 1))).toEqual([7]);
    expect(tail.after(3, 10)).toBeUndefined(); // position 4 was never seen here
    expect(tail.after(8, 10)).toBeUndefined(); // nothing newer known: the database decides
  });

  it('lets go of every event it drops, while a reader stays a commit behind the newest', async () => {
    setFlagsFromString('--expose-gc');
    const collect = runInNewContext('gc') as () => void;
    // Large events: two fit the bytes allowed, far fewer than the events allowed before the array is compacted.
    const tail = recentEvents<Row & { size: number }>({ events: 10_000, bytes: 2_000_000, sizeOf: (row) => row.size });
    const dropped: Array<WeakRef<object>> = [];
    for (let position = 1; position <= 60; position++) {
      const event = { position, size: 1_000_000, text: 'x'.repeat(1_000_000) };
      if (position <= 50) dropped.push(new WeakRef(event));
      tail.add([event]);
      // The reader has read all but the event just added.
      expect(positions(tail.after(position - 1, 10, 'reader'))).toEqual([position]);
    }
    // A megabyte each: held by the slots the tail had moved past, 50 of them stayed on the heap until
    // the array was compacted, 2,500 events later; under a steady load of large items the storage thread ran out of memory.
    await new Promise((resolve) => setTimeout(resolve, 0));
    collect();
    expect(dropped.filter((ref) => ref.deref() !== undefined)).toHaveLength(0);
  });

  it('starts afresh after a gap or a commit noted out of order', () => {
    const tail = recentEvents<Row>({ events: 100, bytes: 1e9, sizeOf: () => 1 });
    tail.add(at(1, 2));
    tail.add(at(4, 5));
    expect(tail.after(1, 10)).toBeUndefined();
    expect(positions(tail.after(3, 10))).toEqual([4, 5]);
    tail.add(at(3));
    expect(tail.after(3, 10)).toBeUndefined();
    expect(positions(tail.after(2, 10))).toEqual([3]);
  });

  it('keeps at most its capacity, the newest', () => {
    const tail = recentEvents<Row>({ events: 3, bytes: 1e9, sizeOf: () => 1 });
    for (let p = 1; p <= 10; p++) tail.add(at(p));
    expect(tail.after(6, 10)).toBeUndefined();
    expect(positions(tail.after(7, 10))).toEqual([8, 9, 10]);
  });

  it('keeps at most its byte budget, the newest, and nothing when one event alone is over it', () => {
    type Sized = { position: number; size: number };
    const tail = recentEvents<Sized>({ events: 100, bytes: 10, sizeOf: (row) => row.size });
    tail.add([
      { position: 1, size: 4 },
      { position: 2, size: 4 },
      { position: 3, size: 4 },
    ]);
    expect(tail.after(0, 10)).toBeUndefined();
    expect(tail.after(1, 10)?.map((row) => row.position)).toEqual([2, 3]);
    tail.add([{ position: 4, size: 50 }]);
    expect(tail.after(3, 10)).toBeUndefined();
    tail.add([{ position: 5, size: 1 }]);
    expect(tail.after(4, 10)?.map((row) => row.position)).toEqual([5]);
  });

  it('drops what every named reader has read, and keeps what the slowest has not', () => {
    const tail = recentEvents<Row>({ events: 100, bytes: 1e9, sizeOf: () => 1 });
    tail.add(at(1, 2, 3, 4, 5));
    expect(positions(tail.after(3, 10, 'fast'))).toEqual([4, 5]);
    expect(positions(tail.after(1, 10, 'slow'))).toEqual([2, 3, 4, 5]);
    tail.add(at(6));
    expect(positions(tail.after(1, 10))).toEqual([2, 3, 4, 5, 6]); // 'slow' has not read 2 yet
    tail.after(5, 10, 'slow');
    tail.add(at(7));
    expect(tail.after(2, 10)).toBeUndefined(); // read by both: gone
    expect(positions(tail.after(3, 10))).toEqual([4, 5, 6, 7]);
  });

  it('keeps everything up to its limits while no reader names itself', () => {
    const tail = recentEvents<Row>({ events: 100, bytes: 1e9, sizeOf: () => 1 });
    tail.add(at(1, 2, 3));
    tail.after(3, 10);
    tail.add(at(4));
    expect(positions(tail.after(0, 10))).toEqual([1, 2, 3, 4]);
  });

  it('lets a reader silent for a while hold nothing', () => {
    let clock = 0;
    const tail = recentEvents<Row>({ events: 100, bytes: 1e9, sizeOf: () => 1, readerIdleMs: 1000, now: () => clock });
    tail.add(at(1, 2, 3));
    tail.after(0, 10, 'halted');
    tail.after(2, 10, 'running');
    clock = 999;
    tail.add(at(4));
    expect(positions(tail.after(0, 10))).toEqual([1, 2, 3, 4]);
    clock = 1001;
    tail.after(3, 10, 'running');
    tail.add(at(5));
    expect(tail.after(2, 10)).toBeUndefined();
    expect(positions(tail.after(3, 10))).toEqual([4, 5]);
  });
});
