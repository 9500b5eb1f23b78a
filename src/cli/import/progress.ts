export interface Counts {
  readonly read: number;
  readonly accepted: number;
  readonly duplicate: number;
  readonly rejected: number;
}

interface Source {
  bytesRead(): number;
  readonly totalBytes: number | undefined;
}

const BAR_WIDTH = 24;
const TTY_EVERY_MS = 100;
const PLAIN_EVERY_MS = 2000;

/** Every count in one style: 3,101 read, 2,000 accepted. */
const n = (value: number) => value.toLocaleString('en-US');

/**
 * Progress of an import: on a terminal a bar redrawn in place (count, rate, ETA from the bytes read);
 * elsewhere (a log, CI) a plain line every couple of seconds.
 */
export function progressReporter(
  out: NodeJS.WritableStream & { isTTY?: boolean },
  source: Source,
  counts: Counts,
  now: () => number = Date.now,
) {
  const started = now();
  let shown = started;
  const tty = out.isTTY === true;
  const rate = () => {
    const seconds = Math.max((now() - started) / 1000, 0.001);
    return counts.read / seconds;
  };
  const line = () => {
    const base = `${n(counts.read)} read, ${n(counts.accepted)} accepted, ${n(counts.duplicate)} duplicate, ${n(counts.rejected)} rejected, ${n(Math.round(rate()))}/s`;
    const total = source.totalBytes;
    if (!tty || !total) return base;
    const fraction = Math.min(source.bytesRead() / total, 1);
    const filled = Math.round(fraction * BAR_WIDTH);
    const elapsed = (now() - started) / 1000;
    const eta = fraction > 0 ? Math.max(0, (elapsed / fraction) * (1 - fraction)) : 0;
    return `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${Math.round(fraction * 100)}% ${base}, ETA ${clock(eta)}`;
  };
  return {
    update() {
      const at = now();
      if (at - shown < (tty ? TTY_EVERY_MS : PLAIN_EVERY_MS)) return;
      shown = at;
      out.write(tty ? `\r\u001b[2K${line()}` : `${line()}\n`);
    },
    done() {
      if (tty) out.write(`\r\u001b[2K${line()}\n`);
    },
  };
}

function clock(seconds: number): string {
  const s = Math.round(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}
