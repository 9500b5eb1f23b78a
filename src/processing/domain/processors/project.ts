import type { JsonObject, JsonValue } from '../../../shared/events.js';
import { ok, type Processor } from '../processor.js';

/** Keeps only the listed fields (dot paths such as "customer.email"); missing fields are left out. */
export function project(fields: readonly string[]): Processor {
  const paths = fields.map((field) => field.split('.'));
  return {
    name: 'project',
    run(input) {
      const output: JsonObject = {};
      for (const path of paths) {
        const value = read(input, path);
        if (value !== undefined) write(output, path, value);
      }
      return ok(output);
    },
  };
}

function read(source: JsonObject, path: readonly string[]): JsonValue | undefined {
  let current: JsonValue | undefined = source;
  for (const key of path) {
    if (current === null || typeof current !== 'object' || Array.isArray(current) || !Object.hasOwn(current, key)) return undefined;
    current = current[key];
  }
  return current;
}

function write(target: JsonObject, path: readonly string[], value: JsonValue): void {
  let current = target;
  path.slice(0, -1).forEach((key) => {
    const next = current[key];
    if (next === null || typeof next !== 'object' || Array.isArray(next)) current[key] = {};
    current = current[key] as JsonObject;
  });
  const last = path.at(-1);
  if (last !== undefined) current[last] = value;
}
