/**
 * `credproxy import PROVIDER`: bring a full token (with its refresh token) into the host store.
 * `credproxy import --from TOOL`: the same for the login an AI coding CLI keeps in its own file.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Command, Option } from 'commander';
import { TOOL_FORMATS } from '../../oauth/importers/registry.js';
import { readToolFile, ToolFileError } from '../../oauth/importers/toolFile.js';
import { FieldError, type ImportedLogin, type ToolFormat } from '../../oauth/importers/toolFormat.js';
import { writeBackTarget } from '../../oauth/importers/writeBack.js';
import { WRITE_BACK_FIELD } from '../../oauth/token.js';
import { TokenService } from '../../oauth/TokenService.js';
import type { StoredToken } from '../../store/types.js';
import { CliError, warn } from '../util/errors.js';
import { describeExpiry } from '../util/duration.js';
import { readStdin } from '../util/stdin.js';
import { withHostStores } from '../util/stores.js';
import { label, toTarget, type Target } from '../util/target.js';
import { parseTokenJson } from '../util/tokenJson.js';

const NO_STDIN = 'No token JSON on stdin; pipe it in or use --file FILE';
const TOOL_NAMES = [...TOOL_FORMATS.keys()];

interface ImportOptions {
  bucket: string;
  file?: string;
  from?: string;
  path?: string;
  writeBack?: boolean;
  withApiKey?: boolean;
}

/** Where a token came from, for the report. */
interface Source {
  format: ToolFormat;
  file: string;
  writeBack: boolean;
}

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

/** Refuses option mixes that would silently ignore something the user asked for. */
function checkOptions(provider: string | undefined, opts: ImportOptions): void {
  if (provider === undefined && opts.from === undefined) {
    throw new CliError(`Name a PROVIDER (token JSON on stdin or --file) or --from TOOL (${TOOL_NAMES.join(', ')})`);
  }
  if (provider !== undefined && opts.from !== undefined) {
    throw new CliError(`Give either PROVIDER or --from TOOL, not both: --from stores under the tool's own provider`);
  }
  if (opts.from === undefined) {
    for (const [flag, set] of [['--path', opts.path !== undefined], ['--write-back', opts.writeBack], ['--with-api-key', opts.withApiKey]] as const) {
      if (set) throw new CliError(`${flag} only works with --from TOOL`);
    }
  } else {
    if (opts.file !== undefined) throw new CliError('--file is for PROVIDER imports; with --from, name the tool\'s file with --path');
    if (opts.withApiKey && opts.from !== 'codex') throw new CliError('--with-api-key only applies to --from codex (its OPENAI_API_KEY)');
  }
}

/** Reads the tool's file into what to store; every problem is one line naming the file (and the field). */
function readLogin(format: ToolFormat, file: string): ImportedLogin {
  try {
    return format.read(readToolFile(file).doc);
  } catch (err) {
    if (err instanceof ToolFileError && err.reason === 'missing') {
      throw new CliError(`${file} does not exist: log in with ${format.tool} first, or name its file with --path`);
    }
    if (err instanceof ToolFileError) throw new CliError(err.message);
    if (err instanceof FieldError) throw new CliError(`Cannot import ${file}: ${err.message}`);
    throw err;
  }
}

/**
 * The part both forms share: store `token` in place of whatever (provider, bucket) held — and an API
 * key, when asked — then say what was stored.
 */
async function storeAndReport(
  cmd: Command,
  target: Target,
  token: StoredToken | null,
  extras: { now: number; source?: Source; apiKey?: { name: string; value: string } },
): Promise<void> {
  const left = await withHostStores(cmd, async ({ tokens, keys }) => {
    if (extras.apiKey) await keys.setKey(extras.apiKey.name, extras.apiKey.value);
    if (!token) return 0;
    const service = new TokenService(tokens, { now: () => extras.now });
    // Import replaces rather than merges: it is how a complete credential set comes in, and
    // the lock keeps a concurrent daemon refresh from writing an older token over it.
    await service.replace(target.provider, target.bucket, token);
    return service.secondsLeft(token);
  });
  const { source } = extras;
  if (extras.apiKey) process.stdout.write(`Stored key ${extras.apiKey.name}${source ? ` (from ${source.file})` : ''}\n`);
  if (!token) return;
  const hasRefresh = typeof token.refresh_token === 'string' && token.refresh_token.length > 0;
  const from = source ? ` from ${source.format.tool}'s ${source.file}` : '';
  process.stdout.write(
    `Imported token for ${label(target)}${from} (${describeExpiry(left)}; ${hasRefresh ? 'refresh token stored' : 'no refresh token'})\n`,
  );
  if (source && hasRefresh) process.stdout.write(`${refresherLine(source, target)}\n`);
  if (left <= 0 && !hasRefresh) warn(`warning: the token for ${label(target)} is expired and cannot be refreshed`);
}

/** A refresh token shared by two refreshers dies at the first rotation: say who refreshes now. */
function refresherLine(source: Source, target: Target): string {
  if (source.writeBack) return `Write-back on: each refresh by credproxy also writes the new tokens into ${source.file}`;
  const command = `credproxy token ${target.provider}${target.bucket === 'default' ? '' : ` --bucket ${target.bucket}`}`;
  const hint = source.format.tokenHelpHint ? ` ${source.format.tokenHelpHint(command)}` : '';
  return `From now on only credproxy may refresh this login: let ${source.format.tool} get its token from credproxy${hint}, or the two refreshers will burn each other's single-use refresh token`;
}

async function importFromTool(cmd: Command, opts: ImportOptions & { from: string }): Promise<void> {
  const format = TOOL_FORMATS.get(opts.from)!; // commander checked the choice
  const target = toTarget(format.provider, opts.bucket);
  const file = path.resolve(opts.path ?? format.defaultPath(process.env));
  const login = readLogin(format, file);
  const source: Source = { format, file, writeBack: Boolean(opts.writeBack) };

  if (opts.withApiKey && !login.apiKey) throw new CliError(`--with-api-key: ${file} holds no API key`);
  if (!login.token) {
    // Only Codex files signed in with an API key get here.
    if (!opts.withApiKey) {
      throw new CliError(
        `${file} holds no ${format.tool} login, only an API key (${login.apiKey!.field}): pass --with-api-key to store it as key ${login.apiKey!.keyName}`,
      );
    }
    if (opts.writeBack) throw new CliError(`--write-back: ${file} holds no login to keep up to date, only an API key`);
  }
  const token = login.token && opts.writeBack ? { ...login.token, [WRITE_BACK_FIELD]: writeBackTarget(format, file) } : login.token;
  const apiKey = opts.withApiKey && login.apiKey ? { name: login.apiKey.keyName, value: login.apiKey.value } : undefined;
  await storeAndReport(cmd, target, token, { now: Date.now(), source, ...(apiKey && { apiKey }) });
  if (login.apiKey && !apiKey) {
    process.stdout.write(
      `${file} also holds an API key (${login.apiKey.field}), not stored: pass --with-api-key to store it as key ${login.apiKey.keyName}, ` +
        `or pipe it into credproxy keys set ${login.apiKey.keyName}\n`,
    );
  }
}

export function importCommand(): Command {
  return new Command('import')
    .description("store a full token for PROVIDER in the host store, or the login of an AI coding CLI's own file (--from), replacing any stored token")
    .argument('[provider]', 'provider name, e.g. anthropic (not with --from)')
    .option('--bucket <bucket>', 'bucket (account slot) to store it under', 'default')
    .option('--file <file>', 'read the token JSON from FILE ("-" = stdin); default: stdin')
    .addOption(new Option('--from <tool>', "import the login the tool keeps in its own file").choices(TOOL_NAMES))
    .option('--path <file>', "with --from: the tool's file, if not at its default place")
    .option('--write-back', 'with --from: after each refresh, write the new tokens back into that file')
    .option('--with-api-key', 'with --from codex: also store its OPENAI_API_KEY as key openai')
    .addHelpText(
      'after',
      `
The JSON needs "access_token" and an expiry: "expiry" in epoch seconds (values >= 1e11 are
taken as milliseconds) or "expires_in" seconds from now. Optional: "token_type" (default Bearer),
"refresh_token", "scope" and provider fields. The refresh token stays on the host; nothing secret
is printed.

  credproxy import anthropic < token.json
  credproxy import gemini --bucket work --file ~/gemini-token.json

--from reads a tool's own login file (HOME is $HOME):
  claude-code  ~/.claude/.credentials.json ($CLAUDE_CONFIG_DIR/.credentials.json)  → anthropic
  codex        $CODEX_HOME/auth.json, else ~/.codex/auth.json                    → codex
  gemini-cli   ~/.gemini/oauth_creds.json                                        → gemini
  qwen-code    ~/.qwen/oauth_creds.json                                          → qwen

A refresh token is single-use: once credproxy refreshes, the tool's copy is spent. Afterwards only
credproxy may refresh; have the tool get its token from credproxy, or pass --write-back so every
refresh also updates the tool's file (in the tool's own format; skipped, and logged by the daemon,
if the file meanwhile holds another login). Importing again without --write-back turns it off.

  credproxy import --from claude-code
  credproxy import --from codex --path /mnt/old-home/.codex/auth.json --bucket old --write-back`,
    )
    .action(async (provider: string | undefined, opts: ImportOptions, cmd: Command) => {
      checkOptions(provider, opts);
      if (opts.from !== undefined) return importFromTool(cmd, { ...opts, from: opts.from });
      const target = toTarget(provider!, opts.bucket);
      const now = Date.now();
      const token = parseTokenJson(await readInput(opts.file), now);
      await storeAndReport(cmd, target, token, { now });
    });
}
