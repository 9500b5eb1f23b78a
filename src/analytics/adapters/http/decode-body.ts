import { promisify } from 'node:util';
import { gunzip, inflate, brotliDecompress } from 'node:zlib';
import { ValidationError } from '../../../shared/errors.js';
import { utf8Text } from '../../../shared/http/json-limits.js';

const decoders = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  deflate: promisify(inflate),
  br: promisify(brotliDecompress),
} as const;

/**
 * The request body's JSON text, whatever its label: SDKs send JSON as `application/json`,
 * `text/plain` (sendBeacon) or, gzipped, as `application/x-www-form-urlencoded` (RudderStack's Node
 * SDK). Decompression stops at `maxBytes`, so a small gzip bomb cannot become a large allocation.
 */
export async function decodeBodyText(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): Promise<string> {
  const text = utf8Text(await decompress(raw, (contentEncoding ?? 'identity').trim().toLowerCase(), maxBytes));
  if (text.trim().length === 0) throw new ValidationError('request.malformed-json', 'the body is empty; send a JSON object');
  return text;
}

async function decompress(raw: Buffer, encoding: string, maxBytes: number): Promise<Buffer> {
  if (encoding === 'identity' || encoding === '') return raw;
  if (!(encoding in decoders)) {
    throw new ValidationError('request.unsupported-encoding', `Content-Encoding "${encoding}" is not supported (gzip, deflate, br)`);
  }
  try {
    return await decoders[encoding as keyof typeof decoders](raw, { maxOutputLength: maxBytes });
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new ValidationError('request.body-too-large', `the body decompresses to more than ${maxBytes} bytes`);
    }
    throw new ValidationError('request.bad-encoding', `the body is not valid ${encoding} data: ${(error as Error).message}`);
  }
}
