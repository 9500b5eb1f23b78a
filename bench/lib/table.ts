export type Cell = string | number | null;

export interface Column<Row> {
  readonly header: string;
  readonly value: (row: Row) => Cell;
  /** Numbers are right-aligned by default, text left-aligned. */
  readonly align?: 'left' | 'right';
  /** Digits after the decimal point for numbers (default 0). */
  readonly decimals?: number;
}

/** A table ready to print: headers and already formatted cells. */
export interface Table {
  readonly title?: string;
  readonly headers: readonly string[];
  readonly aligns: readonly ('left' | 'right')[];
  readonly rows: readonly (readonly string[])[];
}

function formatCell(cell: Cell, decimals: number): string {
  if (cell === null) return 'n/a';
  if (typeof cell === 'string') return cell;
  return cell.toLocaleString('en-US', { minimumFractionDigits: decimals, maximumFractionDigits: decimals });
}

export function table<Row>(columns: readonly Column<Row>[], rows: readonly Row[], title?: string): Table {
  return {
    ...(title === undefined ? {} : { title }),
    headers: columns.map((column) => column.header),
    aligns: columns.map(
      (column, index) => column.align ?? (rows.some((row) => typeof columns[index]?.value(row) === 'string') ? 'left' : 'right'),
    ),
    rows: rows.map((row) => columns.map((column) => formatCell(column.value(row), column.decimals ?? 0))),
  };
}

/** Renders as a Markdown-compatible pipe table, readable as-is in a terminal. */
export function renderTable(t: Table): string {
  const widths = t.headers.map((header, index) => Math.max(header.length, ...t.rows.map((row) => (row[index] ?? '').length)));
  const pad = (text: string, index: number) =>
    t.aligns[index] === 'right' ? text.padStart(widths[index] ?? 0) : text.padEnd(widths[index] ?? 0);
  const line = (cells: readonly string[]) => `| ${cells.map((cell, index) => pad(cell, index)).join(' | ')} |`;
  const rule = `|${widths.map((width, index) => (t.aligns[index] === 'right' ? `${'-'.repeat(width + 1)}:` : `${'-'.repeat(width + 2)}`)).join('|')}|`;
  return [...(t.title === undefined ? [] : [t.title, '']), line(t.headers), rule, ...t.rows.map(line)].join('\n');
}
