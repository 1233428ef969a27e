/** `credproxy import PROVIDER`: bring a full token (with its refresh token) into the host store. */
import { readFile } from 'node:fs/promises';
import { Command } from 'commander';
import { TokenService } from '../../oauth/TokenService.js';
import { CliError, warn } from '../util/errors.js';
import { describeExpiry } from '../util/duration.js';
import { readStdin } from '../util/stdin.js';
import { withHostStores } from '../util/stores.js';
import { label, toTarget } from '../util/target.js';
import { parseTokenJson } from '../util/tokenJson.js';

const NO_STDIN = 'No token JSON on stdin; pipe it in or use --file FILE';

async function readInput(file: string | undefined): Promise<string> {
  if (file === undefined || file === '-') return readStdin(NO_STDIN);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError(`Cannot read token file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (text.trim().length === 0) throw new CliError(`Token file ${file} is empty`);
  return text;
}

export function importCommand(): Command {
  return new Command('import')
    .description('store a full token JSON for PROVIDER in the host store, replacing any stored token')
    .argument('<provider>', 'provider name, e.g. anthropic')
    .option('--bucket <bucket>', 'bucket (account slot) to store it under', 'default')
    .option('--file <file>', 'read the token JSON from FILE ("-" = stdin); default: stdin')
    .addHelpText(
      'after',
      `
The JSON needs "access_token" and an expiry: "expiry" in epoch seconds (values >= 1e11 are
taken as milliseconds) or "expires_in" seconds from now. Optional: "token_type" (default Bearer),
"refresh_token", "scope" and provider fields. The refresh token stays on the host; nothing secret
is printed.

  credproxy import anthropic < token.json
  credproxy import gemini --bucket work --file ~/gemini-token.json`,
    )
    .action(async (provider: string, opts: { bucket: string; file?: string }, cmd: Command) => {
      const target = toTarget(provider, opts.bucket);
      const now = Date.now();
      const token = parseTokenJson(await readInput(opts.file), now);
      const left = await withHostStores(cmd, async ({ tokens }) => {
        const service = new TokenService(tokens, { now: () => now });
        // Import replaces rather than merges: it is how a complete credential set comes in, and
        // the lock keeps a concurrent daemon refresh from writing an older token over it.
        await service.replace(target.provider, target.bucket, token);
        return service.secondsLeft(token);
      });
      const hasRefresh = typeof token.refresh_token === 'string' && token.refresh_token.length > 0;
      process.stdout.write(
        `Imported token for ${label(target)} (${describeExpiry(left)}; ${hasRefresh ? 'refresh token stored' : 'no refresh token'})\n`,
      );
      if (left <= 0 && !hasRefresh) warn(`warning: the token for ${label(target)} is expired and cannot be refreshed`);
    });
}
