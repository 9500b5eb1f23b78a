// Query parameters whose values are secrets: ioredis takes `password`, pg `sslpassword`, others a token or key.
const SECRET_NAME = /pass|secret|token|key|auth|cert/i;

/**
 * Text that may hold URLs (a broker's, in an error message), fit for logs and for answers: the user
 * information of each URL and the values of its secret query parameters become `***`. Linear in the
 * text: each pattern scans a run once.
 */
export function withoutUrlCredentials(text: string): string {
  return text.replace(/\/\/[^@/\s]*@/g, '//***@').replace(/[?&][^\s&#,]*/g, (parameter) => {
    const equals = parameter.indexOf('=');
    return equals > 0 && SECRET_NAME.test(parameter.slice(1, equals)) ? `${parameter.slice(0, equals + 1)}***` : parameter;
  });
}
