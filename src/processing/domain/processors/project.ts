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

/**
 * Sets the value at the path, creating plain objects on the way. Keys become own properties
 * whatever their name: `output["__proto__"] = …` would set the prototype of the output instead,
 * and through it `Object.prototype` for the whole thread.
 */
function write(target: JsonObject, path: readonly string[], value: JsonValue): void {
  let current = target;
  for (const key of path.slice(0, -1)) {
    const next = Object.hasOwn(current, key) ? current[key] : undefined;
    if (next === null || next === undefined || typeof next !== 'object' || Array.isArray(next)) {
      const created: JsonObject = {};
      defineOwn(current, key, created);
      current = created;
    } else {
      current = next;
    }
  }
  const last = path.at(-1);
  if (last !== undefined) defineOwn(current, last, value);
}

function defineOwn(target: JsonObject, key: string, value: JsonValue): void {
  Object.defineProperty(target, key, { value, writable: true, enumerable: true, configurable: true });
}
