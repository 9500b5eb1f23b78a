import { linearRegexSize } from '../../../shared/linear-regex.js';

/**
 * How much work one payload can cost a schema, bounded before the schema is accepted. ajv runs
 * every subschema that applies to a value, and `$ref` lets a small document apply a great many:
 * thirty `$defs` each holding `anyOf` of the previous one twice make 2^30 checks of one value (the
 * storage thread ran out of memory collecting their errors), and `{"anyOf": [{"$ref": "#"}]}`
 * never ends. The bound is per place in the payload: how many subschemas can apply to one value, at
 * any depth a payload may have. A value is checked by at most `MAX_CHECKS_PER_VALUE` subschemas,
 * so the time to validate an item stays linear in its size. A `pattern` (or pattern property) counts
 * one check more per `INSTRUCTIONS_PER_CHECK` RE2 instructions, since each costs that much for every
 * character it tests: a value meets at most about 10,000 instructions of patterns.
 */
export const MAX_CHECKS_PER_VALUE = 1000;
const INSTRUCTIONS_PER_CHECK = 10;
/** Deeper than any JSON body the HTTP edge lets in (`MAX_JSON_DEPTH`, 64 by default), payloads included. */
const MAX_PAYLOAD_DEPTH = 128;
/** Steps the analysis may take before it gives up on a schema as too large to bound. */
const MAX_ANALYSIS_STEPS = 2_000_000;

type Node = object | boolean;

/** Subschemas applied to the same value as their parent. */
const IN_PLACE_ONE = ['not', 'if', 'then', 'else'] as const;
const IN_PLACE_LIST = ['allOf', 'anyOf', 'oneOf'] as const;
const IN_PLACE_MAP = ['dependentSchemas', 'dependencies'] as const;
/** Every keyword whose value holds subschemas, for finding `$id`s and anchors. */
export const SCHEMA_ONE = [
  ...IN_PLACE_ONE,
  'additionalProperties',
  'unevaluatedProperties',
  'propertyNames',
  'items',
  'additionalItems',
  'unevaluatedItems',
  'contains',
  'contentSchema',
] as const;
export const SCHEMA_LIST = [...IN_PLACE_LIST, 'prefixItems', 'items'] as const;
export const SCHEMA_MAP = [...IN_PLACE_MAP, 'properties', 'patternProperties', '$defs', 'definitions'] as const;

const BASE = 'https://schema.intake.invalid/';

/** Why the schema costs too much, or undefined when every payload is checked in bounded time. */
export function schemaCostProblem(schema: Node): string | undefined {
  try {
    new CostAnalysis(schema).run();
    return undefined;
  } catch (error) {
    if (error instanceof TooCostly) return error.message;
    throw error;
  }
}

class TooCostly extends Error {}

/** Subschemas applied to the members and items of a value, per property name or position. */
interface Children {
  readonly named: ReadonlyMap<string, Map<Node, number>>;
  readonly otherName: Map<Node, number>;
  readonly positions: ReadonlyArray<Map<Node, number>>;
  readonly otherPositions: Map<Node, number>;
}

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);
const isNode = (value: unknown): value is Node => typeof value === 'boolean' || isObject(value);

class CostAnalysis {
  /** The base URI each subschema's `$ref` resolves against. */
  private readonly bases = new Map<Node, string>();
  /** Schema resources by absolute URI (no fragment), anchors by URI with fragment. */
  private readonly resources = new Map<string, Node>();
  private readonly anchors = new Map<string, Node>();
  private readonly dynamicAnchors = new Map<string, Node[]>();
  /** Subschemas checked on one value when this one is, itself included; computed once per subschema. */
  private readonly counts = new Map<Node, number>();
  private readonly counting = new Set<Node>();
  private steps = 0;

  constructor(
    readonly root: Node,
    /** Steps the analysis may take; the payload counter, whose states the analysis bounded, takes any. */
    private readonly maxSteps = MAX_ANALYSIS_STEPS,
  ) {
    this.index(root, BASE);
  }

  run(): void {
    // Breadth first over the sets of subschemas that can meet at one place of a payload: a set seen
    // before adds nothing, and a set that keeps growing passes the limit within a few levels.
    const seen = new Set<string>();
    let level: Array<Map<Node, number>> = [new Map([[this.root, 1]])];
    for (let depth = 0; depth <= MAX_PAYLOAD_DEPTH && level.length > 0; depth++) {
      const next: Array<Map<Node, number>> = [];
      for (const state of level) {
        const key = this.keyOf(state);
        if (seen.has(key)) continue;
        seen.add(key);
        const applied = this.expand(state);
        for (const child of this.childStates(applied)) next.push(child);
      }
      level = next;
    }
  }

  private step(amount = 1): void {
    this.steps += amount;
    if (this.steps > this.maxSteps) throw new TooCostly('the schema is too large to bound the cost of validating a payload');
  }

  /** Every subschema applied to one value, with how many times, given those applied directly. */
  expand(state: Map<Node, number>): Map<Node, number> {
    let total = 0;
    for (const [node, times] of state) total += times * this.count(node);
    if (total > MAX_CHECKS_PER_VALUE) {
      throw new TooCostly(
        `up to ${total > 1e15 ? 'more than 10^15' : total} checks by subschemas would apply to one value of a payload ` +
          `(at most ${MAX_CHECKS_PER_VALUE}; a pattern counts one per ${INSTRUCTIONS_PER_CHECK} RE2 instructions): ` +
          'simplify anyOf/allOf/oneOf combinations over $ref, long patterns, or subschemas that apply to the same property many times over',
      );
    }
    const applied = new Map<Node, number>();
    const add = (node: Node, times: number) => {
      this.step();
      applied.set(node, (applied.get(node) ?? 0) + times);
      for (const sub of this.inPlace(node)) add(sub, times);
    };
    for (const [node, times] of state) add(node, times);
    return applied;
  }

  /** How many subschemas check a value this one checks, itself included; a cycle that never moves into the value is refused. */
  private count(node: Node): number {
    const known = this.counts.get(node);
    if (known !== undefined) return known;
    if (this.counting.has(node)) {
      throw new TooCostly(
        'a $ref leads back to a schema already applied to the same value (through allOf, anyOf, oneOf, not, if/then/else or $ref alone): ' +
          'validating a payload would never end',
      );
    }
    this.counting.add(node);
    let total = weightOf(node);
    for (const sub of this.inPlace(node)) {
      this.step();
      total = Math.min(total + this.count(sub), Number.MAX_SAFE_INTEGER);
    }
    this.counting.delete(node);
    this.counts.set(node, total);
    return total;
  }

  private inPlace(node: Node): Node[] {
    if (!isObject(node)) return [];
    const subs: Node[] = [];
    for (const keyword of IN_PLACE_ONE) if (isNode(node[keyword])) subs.push(node[keyword]);
    for (const keyword of IN_PLACE_LIST) subs.push(...listOf(node[keyword]));
    for (const keyword of IN_PLACE_MAP) subs.push(...valuesOf(node[keyword]));
    if (typeof node.$ref === 'string') subs.push(...this.resolve(node, node.$ref));
    if (typeof node.$dynamicRef === 'string') subs.push(...this.resolveDynamic(node, node.$dynamicRef));
    return subs;
  }

  /** The sets of subschemas that can apply to the members and items of a value checked by `applied`. */
  private *childStates(applied: Map<Node, number>): Generator<Map<Node, number>> {
    const children = this.children(applied);
    for (const state of [...children.named.values(), children.otherName, ...children.positions, children.otherPositions])
      if (state.size > 0) yield state;
  }

  /**
   * For each property name some subschema lists, for any other name, for each position of a tuple
   * and for the items after it: the subschemas applied there. Every pattern property is taken to match.
   */
  children(applied: Map<Node, number>): Children {
    const schemas = [...applied].filter((entry): entry is [Record<string, unknown>, number] => isObject(entry[0]));
    const names = new Set<string>();
    let tuple = 0;
    for (const [node] of schemas) {
      if (isObject(node.properties)) for (const name of Object.keys(node.properties)) names.add(name);
      tuple = Math.max(tuple, listOf(node.prefixItems).length);
    }
    this.step(schemas.length * (names.size + tuple + 2));
    const memberState = (name: string | undefined) => {
      const state = new Map<Node, number>();
      for (const [node, times] of schemas) {
        const properties = isObject(node.properties) ? node.properties : {};
        const named = name !== undefined && Object.hasOwn(properties, name) ? properties[name] : undefined;
        for (const sub of [
          named ?? node.additionalProperties,
          ...valuesOf(node.patternProperties),
          node.unevaluatedProperties,
          node.propertyNames,
        ])
          if (isNode(sub)) addTo(state, sub, times);
      }
      return state;
    };
    const itemState = (index: number) => {
      const state = new Map<Node, number>();
      for (const [node, times] of schemas) {
        const prefix = listOf(node.prefixItems);
        const items = Array.isArray(node.items) ? listOf(node.items) : [];
        const positional = prefix[index] ?? items[index];
        for (const sub of [positional ?? (isNode(node.items) ? node.items : node.additionalItems), node.contains, node.unevaluatedItems])
          if (isNode(sub)) addTo(state, sub, times);
      }
      return state;
    };
    return {
      named: new Map([...names].map((name) => [name, memberState(name)])),
      otherName: memberState(undefined),
      positions: Array.from({ length: tuple }, (_, index) => itemState(index)),
      otherPositions: itemState(tuple),
    };
  }

  keyOf(state: Map<Node, number>): string {
    return [...state]
      .map(([node, times]) => `${this.idOf(node)}x${times}`)
      .sort()
      .join(',');
  }

  private readonly ids = new Map<Node, number>();
  private idOf(node: Node): number {
    if (typeof node === 'boolean') return node ? -1 : -2;
    let id = this.ids.get(node);
    if (id === undefined) {
      id = this.ids.size;
      this.ids.set(node, id);
    }
    return id;
  }

  /** Records every subschema's base URI, `$id` resources and anchors, as ajv resolves them. */
  private index(node: unknown, base: string): void {
    if (!isObject(node)) return;
    this.step();
    let here = base;
    const id = typeof node.$id === 'string' ? absolute(node.$id, base) : undefined;
    if (id !== undefined) {
      const [document = id, fragment = ''] = id.split('#');
      if (fragment === '') {
        here = document;
        this.resources.set(here, node);
      } else this.anchors.set(id, node);
    }
    if (!this.resources.has(here)) this.resources.set(here, node);
    this.bases.set(node, here);
    if (typeof node.$anchor === 'string') this.anchors.set(`${here}#${node.$anchor}`, node);
    if (typeof node.$dynamicAnchor === 'string') {
      this.anchors.set(`${here}#${node.$dynamicAnchor}`, node);
      this.dynamicAnchors.set(node.$dynamicAnchor, [...(this.dynamicAnchors.get(node.$dynamicAnchor) ?? []), node]);
    }
    for (const keyword of SCHEMA_ONE) if (isObject(node[keyword])) this.index(node[keyword], here);
    for (const keyword of SCHEMA_LIST) for (const sub of listOf(node[keyword])) this.index(sub, here);
    for (const keyword of SCHEMA_MAP) for (const sub of valuesOf(node[keyword])) this.index(sub, here);
  }

  /** The subschema a `$ref` names; none for one outside the document (ajv's own meta-schemas). */
  private resolve(from: Node, ref: string): Node[] {
    const uri = absolute(ref, this.bases.get(from) ?? BASE);
    if (uri === undefined) return [];
    const hash = uri.indexOf('#');
    const document = hash === -1 ? uri : uri.slice(0, hash);
    const fragment = hash === -1 ? '' : uri.slice(hash + 1);
    const resource = this.resources.get(document);
    if (resource === undefined) return [];
    if (fragment === '') return [resource];
    // A pointer is split before its segments are decoded, as ajv does: `d%2F1` is the key `d/1`.
    if (!fragment.startsWith('/')) {
      const anchored = this.anchors.get(`${document}#${decoded(fragment)}`);
      return anchored === undefined ? [] : [anchored];
    }
    let target: unknown = resource;
    for (const segment of fragment.slice(1).split('/')) {
      const key = decoded(segment).replaceAll('~1', '/').replaceAll('~0', '~');
      if (Array.isArray(target)) target = target[Number(key)];
      else if (isObject(target) && Object.hasOwn(target, key)) target = target[key];
      else return [];
    }
    return isNode(target) ? [target] : [];
  }

  /** A `$dynamicRef` may land on any subschema with its anchor name: all of them are counted. */
  private resolveDynamic(from: Node, ref: string): Node[] {
    const name = ref.startsWith('#') ? ref.slice(1) : undefined;
    const dynamic = name === undefined ? [] : (this.dynamicAnchors.get(name) ?? []);
    return [...new Set([...this.resolve(from, ref), ...dynamic])];
  }
}

/** What ajv may do for one value, in steps of `work-budget.ts`, beside the patterns it tests (counted as they run). */
export const STEPS_PER_CHECK = 8;
/** Each name of `required` or `dependentRequired`, and each member of the values `enum` and `const` compare with. */
export const STEPS_PER_LOOKUP = 1;

/** What checking a value with one subschema may cost beyond the check: list lookups, and the violations it may report. */
function listWorkOf(node: Node): { readonly lookups: number; readonly violations: number } {
  if (!isObject(node)) return { lookups: 0, violations: 1 };
  const required = Array.isArray(node.required) ? node.required.length : 0;
  const dependent = isObject(node.dependentRequired)
    ? Object.values(node.dependentRequired).reduce<number>((sum, names) => sum + (Array.isArray(names) ? names.length : 0), 0)
    : 0;
  const compared = (Array.isArray(node.enum) ? node.enum.reduce<number>((sum, value) => sum + sizeOf(value), 0) : 0) + sizeOf(node.const);
  return { lookups: required + dependent + compared, violations: 1 + required + dependent };
}

/** Values in a JSON value, itself included. */
function sizeOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return value === undefined ? 0 : 1;
  return Object.values(value).reduce<number>((sum, member) => sum + sizeOf(member), 1);
}

/** What ajv may do at one place of a payload: steps, and how many violations it may report there. */
interface Place {
  readonly steps: number;
  readonly violations: number;
  member(name: string): Place | undefined;
  item(index: number): Place | undefined;
}

/**
 * What checking a payload against the schema may cost, counted by walking the payload before ajv
 * runs: at each value, every subschema that may apply there (as `schemaCostProblem` bounds them,
 * each pattern property taken to match) at `STEPS_PER_CHECK`, plus the lists it looks through.
 * The count may be above ajv's own work, never below it, so a budget holds before ajv starts.
 * `spend` is called with each place's steps; the answer is how many violations ajv may report.
 */
export function payloadWork(schema: Node): (payload: unknown, spend: (steps: number) => void) => number {
  // The analysis bounded the places a payload can reach when the schema was accepted: no step limit here.
  const analysis = new CostAnalysis(schema, Number.POSITIVE_INFINITY);
  const places = new Map<string, Place>();
  const placeOf = (state: Map<Node, number>): Place | undefined => {
    if (state.size === 0) return undefined;
    const key = analysis.keyOf(state);
    const known = places.get(key);
    if (known) return known;
    let applied: Map<Node, number>;
    try {
      applied = analysis.expand(state);
    } catch (error) {
      // Deeper than the analysis looked (no HTTP body is): counted as more than any budget.
      if (error instanceof TooCostly)
        return { steps: Number.POSITIVE_INFINITY, violations: 0, member: () => undefined, item: () => undefined };
      throw error;
    }
    let steps = 0;
    let violations = 0;
    for (const [node, times] of applied) {
      const work = listWorkOf(node);
      steps += times * (STEPS_PER_CHECK + STEPS_PER_LOOKUP * work.lookups);
      violations += times * work.violations;
    }
    let children: ReturnType<CostAnalysis['children']> | undefined;
    const childrenOf = () => (children ??= analysis.children(applied));
    const members = new Map<string | undefined, Place | undefined>();
    const items = new Map<number, Place | undefined>();
    const place: Place = {
      steps,
      violations,
      member(name) {
        const listed = childrenOf().named.has(name) ? name : undefined;
        if (!members.has(listed)) members.set(listed, placeOf(childrenOf().named.get(name) ?? childrenOf().otherName));
        return members.get(listed);
      },
      item(index) {
        const at = Math.min(index, childrenOf().positions.length);
        if (!items.has(at)) items.set(at, placeOf(childrenOf().positions[at] ?? childrenOf().otherPositions));
        return items.get(at);
      },
    };
    places.set(key, place);
    return place;
  };
  const root = placeOf(new Map([[analysis.root, 1]]));
  return (payload, spend) => {
    let violations = 0;
    const walk = (value: unknown, place: Place) => {
      spend(place.steps);
      violations += place.violations;
      if (Array.isArray(value)) {
        value.forEach((item: unknown, index) => {
          const child = place.item(index);
          if (child) walk(item, child);
        });
      } else if (isObject(value)) {
        for (const [name, member] of Object.entries(value)) {
          const child = place.member(name);
          if (child) walk(member, child);
        }
      }
    };
    if (root) walk(payload, root);
    return violations;
  };
}

/** One check, and one more per `INSTRUCTIONS_PER_CHECK` instructions of each pattern it runs. */
function weightOf(node: Node): number {
  if (!isObject(node)) return 1;
  const patterns = [
    typeof node.pattern === 'string' ? [node.pattern] : [],
    isObject(node.patternProperties) ? Object.keys(node.patternProperties) : [],
  ];
  // ajv compiles patterns with the u flag.
  return patterns.flat().reduce((sum, pattern) => sum + Math.ceil((linearRegexSize(pattern, 'u') ?? 0) / INSTRUCTIONS_PER_CHECK), 1);
}

function decoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function absolute(ref: string, base: string): string | undefined {
  try {
    return new URL(ref, base).href;
  } catch {
    return undefined;
  }
}

const listOf = (value: unknown): Node[] => (Array.isArray(value) ? value.filter(isNode) : []);
const valuesOf = (value: unknown): Node[] => (isObject(value) ? Object.values(value).filter(isNode) : []);

function addTo(state: Map<Node, number>, node: Node, times: number): void {
  state.set(node, (state.get(node) ?? 0) + times);
}
