/** Which command a `credproxy` command line runs, decided before anything else is loaded. */

/**
 * The command the arguments run: the first operand after the global options (`--store` and
 * `--store-url-file` take a value), when it is one of `commands`. Undefined — load them all — for
 * help or version asked before it, and for a word that is no command (commander then suggests the
 * closest one).
 */
export function commandWord(args: readonly string[], commands: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const word = args[i]!;
    if (word === '--store' || word === '--store-url-file') {
      i += 1;
      continue;
    }
    if (word.startsWith('-')) {
      if (['-h', '--help', '-V', '--version'].includes(word)) return undefined;
      continue;
    }
    return commands.includes(word) ? word : undefined;
  }
  return undefined;
}
