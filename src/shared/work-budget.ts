/**
 * How much work an input may make a thread do, counted in steps before the work is done, so that
 * nothing a caller sends can hold the HTTP thread or the storage thread for long. A step is about
 * what one RE2 instruction costs for one character in the worst case (`linear-regex.ts`), about
 * 12 ns on the 2-core machine the limits were measured on; each user of a budget says what its
 * own operations cost in steps.
 */
export interface WorkBudget {
  /** Steps this budget allows in all. */
  readonly limit: number;
  readonly spent: number;
  /**
   * Counts `steps` about to be taken. When they do not fit, nothing is counted and `OverBudget` is
   * thrown instead, so the caller stops before doing the work.
   */
  spend(steps: number, what?: () => string): void;
  /** A budget of at most `limit` steps whose spending counts here too (and stops where this one does). */
  child(limit: number): WorkBudget;
}

/** Thrown by `WorkBudget.spend` when the steps asked for do not fit; callers turn it into their own outcome. */
export class OverBudget extends Error {
  constructor(
    /** The limit of the budget that refused, which may be a parent's. */
    readonly limit: number,
    /** What the refused work was, when the caller said. */
    readonly what: string | undefined,
    /** The budget that refused: the one spent from, or one it counts toward. */
    readonly budget: WorkBudget,
  ) {
    super(`more than ${limit} steps${what ? `: ${what}` : ''}`);
  }
}

export function workBudget(limit: number): WorkBudget {
  return budgetWithin(limit, undefined);
}

function budgetWithin(limit: number, parent: WorkBudget | undefined): WorkBudget {
  let spent = 0;
  const budget: WorkBudget = {
    limit,
    get spent() {
      return spent;
    },
    spend(steps, what) {
      if (spent + steps > limit) throw new OverBudget(limit, what?.(), budget);
      parent?.spend(steps, what);
      spent += steps;
    },
    child: (childLimit) => budgetWithin(childLimit, budget),
  };
  return budget;
}

/**
 * What the items of one request (a batch) may make the HTTP thread do in all, on top of what each may
 * alone: about 1.2 s, in slices that let other requests in between.
 */
export const STEPS_PER_REQUEST = 100_000_000;
