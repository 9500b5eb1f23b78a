/**
 * What an event type may be, wherever one is given (an item, a message, a schema's or pipeline's path):
 * 1 to 128 characters, none of them a control, line-separator or bidirectional-formatting character,
 * and no space at either end. Analytics SDKs name events freely ("Product Added (v2)", "Café Visited",
 * "$pageview"), and a track event's name is its event type.
 */
const UNSHOWABLE = '\\u0000-\\u001f\\u007f-\\u009f\\u2028\\u2029\\u061c\\u200e\\u200f\\u202a-\\u202e\\u2066-\\u2069';
const END = `[^\\s${UNSHOWABLE}]`;

/** As a JSON Schema `pattern` (no flags needed), for path parameters. */
export const EVENT_TYPE_PATTERN_SOURCE = `^${END}(?:[^${UNSHOWABLE}]{0,126}${END})?$`;
// Read by code points (`u`), as JSON Schema reads `pattern`: 128 emoji are 128 characters, as the schema says.
export const EVENT_TYPE_PATTERN = new RegExp(EVENT_TYPE_PATTERN_SOURCE, 'u');
export const EVENT_TYPE_RULE =
  'must be 1-128 characters, without control, line-separator or bidirectional-formatting characters, and without a space at either end';
