import { TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox';
import type { FastifySchemaCompiler } from 'fastify';
import type { TSchema } from 'typebox';

// Decimal text only: TypeBox's conversion also takes `1.5` for an integer (as 1), hex, exponents and spaces.
const TEXT_OF: Readonly<Record<string, { readonly pattern: RegExp; readonly message: string }>> = {
  integer: { pattern: /^-?(?:0|[1-9][0-9]{0,15})$/, message: 'must be integer' },
  number: { pattern: /^-?(?:0|[1-9][0-9]{0,15})(?:\.[0-9]{1,17})?$/, message: 'must be number' },
  boolean: { pattern: /^(?:true|false)$/, message: 'must be boolean' },
};

/**
 * A query string's schema may take parameters by prefix beside those it names: the lists with payload
 * filters take every `payload.<field>` (checked by the route).
 */
export const PARAMETER_PREFIXES = 'x-parameter-prefixes';

type ObjectSchema = {
  readonly properties?: Readonly<Record<string, { readonly type?: unknown }>>;
  readonly allOf?: readonly ObjectSchema[];
  readonly [PARAMETER_PREFIXES]?: readonly string[];
};
type Fault = { instancePath: string; schemaPath: string; keyword: string; params: Record<string, unknown>; message: string };

const UNKNOWN_PARAMETER = 'is not a parameter of this route (misspelled?)';

/**
 * TypeBox's validator compiler, with query strings and path parameters held to the text of their
 * declared type before TypeBox converts them: `?limit=1.5` is refused, not read as 1. A query string
 * that names a parameter its route does not know is refused too: `?evnet_type=order` ignored would
 * answer every item to a caller who believes them filtered.
 */
export const strictParametersCompiler: FastifySchemaCompiler<unknown> = (route) => {
  const check = TypeBoxValidatorCompiler(route as Parameters<typeof TypeBoxValidatorCompiler>[0]);
  if (route.httpPart !== 'querystring' && route.httpPart !== 'params') return check;
  const properties = propertiesOf(route.schema as ObjectSchema);
  const typed = properties.flatMap(([name, property]) => {
    const text = typeof property.type === 'string' ? TEXT_OF[property.type] : undefined;
    return text ? [[name, text] as const] : [];
  });
  const known = new Set(properties.map(([name]) => name));
  const prefixes = prefixesOf(route.schema as ObjectSchema);
  const isKnown = (name: string) => known.has(name) || prefixes.some((prefix) => name.startsWith(prefix));
  const strictNames = route.httpPart === 'querystring';
  if (typed.length === 0 && !strictNames) return check;
  return (value: unknown) => {
    const given = (value ?? {}) as Record<string, unknown>;
    const faults: Fault[] = [];
    if (strictNames) {
      for (const name of Object.keys(given)) {
        if (!isKnown(name))
          faults.push({ instancePath: `/${name}`, schemaPath: '', keyword: 'unknown-parameter', params: {}, message: UNKNOWN_PARAMETER });
      }
    }
    for (const [name, { pattern, message }] of typed) {
      const raw = given[name];
      if (typeof raw === 'string' && !pattern.test(raw)) {
        faults.push({ instancePath: `/${name}`, schemaPath: '', keyword: 'type', params: {}, message });
      }
    }
    return faults.length > 0 ? { error: faults as never } : check(value);
  };
};

function prefixesOf(schema: ObjectSchema): string[] {
  return [...(schema[PARAMETER_PREFIXES] ?? []), ...(schema.allOf ?? []).flatMap(prefixesOf)];
}

/** The properties of an object schema, those of an intersection's members included. */
function propertiesOf(schema: ObjectSchema): Array<[string, { readonly type?: unknown }]> {
  return [...Object.entries(schema.properties ?? {}), ...(schema.allOf ?? []).flatMap(propertiesOf)];
}

/**
 * For routes whose domain checks the body field by field (and reports every invalid field at once):
 * OpenAPI documents the body's full contract, while the edge holds it only to `loose` (its shape).
 */
export const looseBodyCompiler =
  (loose: TSchema): FastifySchemaCompiler<TSchema> =>
  (route) =>
    route.httpPart === 'body' ? TypeBoxValidatorCompiler({ ...route, schema: loose }) : strictParametersCompiler(route);
