import type { Ajv2020, ErrorObject } from 'ajv/dist/2020.js';

/**
 * Whether `value` is a whole multiple of `divisor`, in the decimals they were written in: a number's
 * shortest text is the one its JSON had (19.99, not 19.989999...), so 19.99 is a multiple of 0.01,
 * where a float division says it is not.
 */
export function isMultipleOf(value: number, divisor: number): boolean {
  const a = decimalOf(value);
  const b = decimalOf(divisor);
  if (b.digits === 0n) return false;
  const scale = Math.max(a.scale, b.scale);
  return (a.digits * 10n ** BigInt(scale - a.scale)) % (b.digits * 10n ** BigInt(scale - b.scale)) === 0n;
}

/** `digits × 10^-scale`, exactly the number's shortest decimal text. */
function decimalOf(value: number): { readonly digits: bigint; readonly scale: number } {
  const match = /^-?(\d+)(?:\.(\d+))?(?:e([+-]?\d+))?$/.exec(String(value));
  if (!match) throw new Error(`not a finite number: ${value}`);
  const [, whole = '', fraction = '', exponent = '0'] = match;
  return { digits: BigInt(whole + fraction), scale: fraction.length - Number(exponent) };
}

/** ajv's `multipleOf` compares a float quotient with its rounding: 1.13 was not a multiple of 0.01. */
export function replaceMultipleOf(ajv: Ajv2020): void {
  ajv.removeKeyword('multipleOf');
  const validate = (divisor: number, value: number): boolean => {
    validate.errors = [];
    if (isMultipleOf(value, divisor)) return true;
    validate.errors = [{ keyword: 'multipleOf', message: `must be multiple of ${divisor}`, params: { multipleOf: divisor } }];
    return false;
  };
  validate.errors = [] as Array<Partial<ErrorObject>>;
  ajv.addKeyword({ keyword: 'multipleOf', type: 'number', schemaType: 'number', errors: true, validate });
}
