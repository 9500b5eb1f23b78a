import { Type, type TSchema } from 'typebox';
import type { Page } from '../pagination.js';

/** Schemas shared by every context's routes. */
export const ProblemSchema = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.String(),
    instance: Type.String(),
    code: Type.String(),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details' },
);

export const problemRef = Type.Ref('Problem');

export const PageQuery = Type.Object({
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000, description: 'Page size (default 100, at most 1000)' })),
  // Room for a key of several ids at their longest (an app id of 255 four-byte characters alone takes 1,360).
  cursor: Type.Optional(Type.String({ maxLength: 4096, description: 'The next_cursor of the previous page' })),
});

/** A list route's answer: one page of `items`, and the cursor of the next page. */
export const PageSchema = <T extends TSchema>(item: T) =>
  Type.Object({
    items: Type.Array(item),
    next_cursor: Type.Union([Type.String(), Type.Null()], { description: 'Pass as `cursor` for the next page; null on the last page' }),
  });

export const pageBody = <T, B>(page: Page<T>, toBody: (item: T) => B) => ({
  items: page.items.map((item) => toBody(item)),
  next_cursor: page.nextCursor,
});

/**
 * Any JSON object. Not `Type.Record(Type.String(), ...)`: its `patternProperties: {"^.*$"}` makes the
 * response serializer drop every key holding a line terminator (`.` does not match U+2028, \n...).
 */
export const JsonObjectSchema = Type.Unsafe<Record<string, unknown>>({
  type: 'object',
  additionalProperties: true,
  description: 'Any JSON object',
});

export const errorResponses = {
  400: problemRef,
  401: problemRef,
  404: problemRef,
  413: problemRef,
  503: problemRef,
};

/**
 * Marks a route whose body may be left out (`curl -X POST` with none): the OpenAPI document, which
 * would call every declared body required, says it is not.
 */
export const OPTIONAL_BODY = 'x-optional-body';
