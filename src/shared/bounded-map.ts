/**
 * Makes room for one more entry in a cache kept for the process's life and keyed by what clients or
 * their data name (applications, rules): past `limit` entries the oldest go, and are read again when
 * next needed. A Map or Set iterates in insertion order, so the first keys are the oldest.
 */
export function makeRoom<K>(cache: Map<K, unknown> | Set<K>, limit: number): void {
  for (const key of cache.keys()) {
    if (cache.size < limit) return;
    cache.delete(key);
  }
}
