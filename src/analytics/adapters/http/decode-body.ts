import { promisify } from 'node:util';
import { gunzip, inflate, inflateRaw, brotliDecompress, type ZlibOptions } from 'node:zlib';
import { ValidationError } from '../../../shared/errors.js';
import { utf8Text } from '../../../shared/http/json-limits.js';

const zlibInflate = promisify(inflate);
const rawInflate = promisify(inflateRaw);

const decoders = {
  gzip: promisify(gunzip),
  'x-gzip': promisify(gunzip),
  // HTTP's deflate is the zlib format, but clients send bare deflate under the same name (as browsers'
  // CompressionStream('deflate-raw') makes it): a body without the zlib header is read as that.
  deflate: async (raw: Buffer, options: ZlibOptions) => {
    try {
      return await zlibInflate(raw, options);
    } catch (error) {
      if ((error as { code?: string }).code !== 'Z_DATA_ERROR') throw error;
      return rawInflate(raw, options);
    }
  },
  br: promisify(brotliDecompress),
} as const;

/**
 * The request body's JSON text, whatever its label: SDKs send JSON as `application/json`,
 * `text/plain` (sendBeacon) or, gzipped, as `application/x-www-form-urlencoded` (RudderStack's Node
 * SDK). Decompression stops at `maxBytes`, so a small gzip bomb cannot become a large allocation.
 */
export async function decodeBodyText(raw: Buffer, contentEncoding: string | undefined, maxBytes: number): Promise<string> {
  // A list (`gzip, identity`) names the codings applied in order; identity applies none.
  const codings = (contentEncoding ?? '')
    .split(',')
    .map((coding) => coding.trim().toLowerCase())
    .filter((coding) => coding !== '' && coding !== 'identity');
  if (codings.length > 1) {
    throw new ValidationError('request.unsupported-encoding', `Content-Encoding "${contentEncoding}" applies several codings: send one`);
  }
  const text = utf8Text(await decompress(raw, codings[0] ?? 'identity', maxBytes));
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
      throw new ValidationError('request.body-too-large', `the body decompresses to more than ${maxBytes.toLocaleString('en')} bytes`);
    }
    throw new ValidationError('request.bad-encoding', `the body is not valid ${encoding} data: ${(error as Error).message}`);
  }
}
