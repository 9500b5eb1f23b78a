import { SCHEMA_LIST, SCHEMA_MAP, SCHEMA_ONE } from './schema-cost.js';

/** Annotations of the schema's author: JSON Schema lets any keyword be one, and `x-` says so on purpose. */
const isOwnAnnotation = (keyword: string) => keyword.startsWith('x-');
/** Keywords ajv reads as it indexes the document, outside its list of keywords. */
const READ_WHILE_INDEXING = new Set(['$anchor']);

/**
 * The keywords of the schema and its subschemas that `isKnown` does not know, but `x-…`, each once
 * in the order met. ajv skips them without a word, so a misspelt `required` lets every item through.
 */
export function unknownKeywords(schema: unknown, isKnown: (keyword: string) => boolean): string[] {
  const unknown = new Set<string>();
  const visit = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    if (Array.isArray(node)) return node.forEach(visit);
    const members = node as Record<string, unknown>;
    for (const keyword of Object.keys(members))
      if (!isKnown(keyword) && !READ_WHILE_INDEXING.has(keyword) && !isOwnAnnotation(keyword)) unknown.add(keyword);
    for (const keyword of [...SCHEMA_ONE, ...SCHEMA_LIST]) visit(members[keyword]);
    for (const keyword of SCHEMA_MAP) {
      const map = members[keyword];
      if (typeof map === 'object' && map !== null && !Array.isArray(map)) Object.values(map).forEach(visit);
    }
  };
  visit(schema);
  return [...unknown];
}
