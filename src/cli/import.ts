import { importFile, ImportStopped, type ImportSummary } from './import/import-file.js';
import type { ImportFormat } from './import/read-records.js';

export interface ImportArgs {
  readonly file: string | undefined;
  readonly url?: string;
  readonly writeKey?: string;
  readonly token?: string;
  readonly format?: string;
  readonly batchSize?: string;
  readonly rejects?: string;
  /** The summary as one JSON object on stdout, for scripts. */
  readonly json?: boolean;
}

/** `intake import FILE`: sends the file to a running Intake and prints the summary; 2 on bad arguments. */
export async function runImport(args: ImportArgs, env: NodeJS.ProcessEnv = process.env): Promise<number> {
  if (!args.file) {
    process.stderr.write(
      'usage: intake import FILE|- [--url URL] [--write-key KEY] [--token TOKEN] [--format ndjson|csv] [--batch-size N] [--rejects PATH] [--json]\n',
    );
    return 2;
  }
  if (args.format !== undefined && args.format !== 'ndjson' && args.format !== 'csv') {
    process.stderr.write(`intake import: --format must be ndjson or csv, not "${args.format}"\n`);
    return 2;
  }
  const batchSize = args.batchSize === undefined ? 100 : Number(args.batchSize);
  if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 500) {
    process.stderr.write('intake import: --batch-size must be an integer from 1 to 500\n');
    return 2;
  }
  // Empty is unset, as for the server's own variables.
  const url = args.url ?? (env.INTAKE_URL || `http://127.0.0.1:${env.PORT || 8000}`);
  if (!/^https?:\/\/[^/]/i.test(url)) {
    process.stderr.write(`intake import: --url must be an http:// or https:// address of Intake, not "${url}"\n`);
    return 2;
  }
  // Left to fetch, an address it cannot parse (a port beyond 65535) would be retried as if the server were down.
  if (!URL.canParse(url)) {
    process.stderr.write(`intake import: --url is not a valid address: "${url}"\n`);
    return 2;
  }
  const writeKey = args.writeKey ?? (env.INTAKE_WRITE_KEY || undefined);
  const token = args.token ?? (env.INTAKE_TOKEN || env.ADMIN_TOKEN || undefined);
  // Without either, every record would be rejected one by one and the run still "succeed".
  if (!writeKey && !token) {
    process.stderr.write('intake import: give --write-key (Segment-style messages) or --token (partner items), or both\n');
    return 2;
  }
  // Ctrl-C stops the sending and says what was sent; a second one ends the process at once, as by default.
  const stop = new AbortController();
  const interrupt = () => stop.abort();
  process.once('SIGINT', interrupt);
  let summary: ImportSummary;
  try {
    summary = await importFile({
      file: args.file,
      url,
      ...(writeKey ? { writeKey } : {}),
      ...(token ? { token } : {}),
      ...(args.format ? { format: args.format as ImportFormat } : {}),
      batchSize,
      ...(args.rejects ? { rejectsPath: args.rejects } : {}),
      out: process.stderr,
      signal: stop.signal,
    });
  } catch (error) {
    // What was sent before the stop, beside the error's line: the run need not be guessed at.
    if (error instanceof ImportStopped) printSummary(error.summary, args.json === true, 'stopped after');
    throw error;
  } finally {
    process.off('SIGINT', interrupt);
  }
  printSummary(summary, args.json === true, 'imported');
  // Every record refused (a key of another application, a file of another kind) is no success.
  return summary.rejected > 0 && summary.accepted + summary.duplicate === 0 ? 1 : 0;
}

function printSummary(summary: ImportSummary, json: boolean, verb: string): void {
  // Read but not sent, or sent without an answer, when the import was stopped by hand.
  const unconfirmed = summary.read - summary.accepted - summary.duplicate - summary.rejected;
  process.stdout.write(
    json
      ? `${JSON.stringify({
          read: summary.read,
          accepted: summary.accepted,
          duplicate: summary.duplicate,
          rejected: summary.rejected,
          not_confirmed: unconfirmed,
          rejects_path: summary.rejectsPath ?? null,
        })}\n`
      : `${verb} ${summary.read} ${summary.read === 1 ? 'record' : 'records'}: ${summary.accepted} accepted, ${summary.duplicate} duplicate, ${summary.rejected} rejected` +
          (unconfirmed > 0 ? `, ${unconfirmed} not confirmed` : '') +
          (summary.rejectsPath ? `; rejects with their reasons in ${summary.rejectsPath}\n` : '\n'),
  );
}
