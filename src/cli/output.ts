/** What a command prints on stdout: a sentence for a person, or one JSON document with `--json`. */
export interface Output {
  readonly json: boolean;
  result(human: string, data: unknown): void;
}

export function outputFor(json: boolean, write: (text: string) => void = (text) => process.stdout.write(text)): Output {
  return {
    json,
    result(human, data) {
      write(json ? `${JSON.stringify(data)}\n` : `${human}\n`);
    },
  };
}

/** Rows as aligned columns under a header, for lists printed to a person. */
export function table(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
  if (rows.length === 0) return '(none)';
  rows = rows.map((row) => row.map(printable));
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => (row[i] ?? '').length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => cell.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;

/**
 * A cell as the terminal should show it: a name holding a newline or an escape sequence (an
 * application's, say) would otherwise start rows of its own, or recolour the table.
 */
export const printable = (cell: string): string => cell.replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
