/** Plain-text tables of the listing commands: every column but the last padded to its widest cell, two spaces apart. */
export function columns(rows: readonly (readonly string[])[]): string {
  const widths = rows[0]!.slice(0, -1).map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return `${rows.map((row) => row.map((cell, i) => (i < widths.length ? cell.padEnd(widths[i]!) : cell)).join('  ').trimEnd()).join('\n')}\n`;
}
