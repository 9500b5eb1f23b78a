/** A failure the CLI reports as one line on stderr, with its exit code (1: failed, 2: bad usage, 130: Ctrl-C). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: 1 | 2 | 130 = 1,
  ) {
    super(message);
  }
}
