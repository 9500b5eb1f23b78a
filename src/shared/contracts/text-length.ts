/**
 * Whether `text` has more than `max` characters, counted as JSON Schema's `maxLength` counts them (code
 * points) and as the OpenAPI document promises: an emoji is one character, not the two UTF-16 units
 * `String.length` counts.
 */
export function longerThan(text: string, max: number): boolean {
  if (text.length <= max) return false;
  let count = 0;
  for (const _ of text) if (++count > max) return true;
  return false;
}
