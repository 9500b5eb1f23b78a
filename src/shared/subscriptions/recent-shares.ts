/**
 * How much of the recent load each source (an application or a partner) sent, for flow control to
 * hold the sources that make a backlog rather than everyone. Counts decay by half every `halfLifeMs`,
 * so a source that stopped sending drops out within seconds, and the map holds only sources active of late.
 */
export interface RecentShares {
  /** Counts `weight` (events) admitted for `source`; `wentAhead` when it went past a hold as light. */
  add(source: string, weight: number, wentAhead?: boolean): void;
  /**
   * Whether `source` sent less than half of an even share of the recent load (among N active sources,
   * under 1/(2N)) while what went ahead as light is under half of it. A source alone is never light,
   * nor are many that send alike, and sources that are each new (every item of another partner) can
   * take at most half of what goes in.
   */
  isLight(source: string): boolean;
}

// Below this a decayed count is forgotten: the source has been quiet for several half-lives.
const FORGET_BELOW = 0.5;

export function recentShares(options: { readonly halfLifeMs?: number; readonly now?: () => number } = {}): RecentShares {
  const halfLifeMs = options.halfLifeMs ?? 1000;
  const now = options.now ?? (() => performance.now());
  const counts = new Map<string, number>();
  let total = 0;
  let ahead = 0;
  let decayedAt = now();

  const decay = () => {
    const at = now();
    const halvings = Math.floor((at - decayedAt) / halfLifeMs);
    if (halvings < 1) return;
    decayedAt += halvings * halfLifeMs;
    const factor = 0.5 ** Math.min(halvings, 64);
    ahead *= factor;
    total = 0;
    for (const [source, count] of counts) {
      const kept = count * factor;
      if (kept < FORGET_BELOW) counts.delete(source);
      else {
        counts.set(source, kept);
        total += kept;
      }
    }
  };

  return {
    add(source, weight, wentAhead = false) {
      decay();
      counts.set(source, (counts.get(source) ?? 0) + weight);
      total += weight;
      if (wentAhead) ahead += weight;
    },
    isLight(source) {
      decay();
      // A source not seen of late counts as one more active source, with nothing sent yet.
      const count = counts.get(source) ?? 0;
      const active = counts.size + (counts.has(source) ? 0 : 1);
      return active > 1 && count * 2 * active < total && ahead * 2 < total;
    },
  };
}
