/**
 * What `credproxy login` shows and asks. Everything here goes to stderr, so stdout carries only the
 * final success line. On an interactive terminal (stdin and stderr both TTYs) device logins get a
 * QR code and waiting gets a spinner; otherwise the output is plain lines that scripts can read.
 * Never shown: tokens, device codes, verifiers, state, or the pasted code.
 */
import readline from 'node:readline';
import { Writable } from 'node:stream';
import { renderUnicodeCompact } from 'uqr';
import type { LoginStart, LoginUi } from '../../client/loginDriver.js';
import type { BrowserOpener } from './loginBrowser.js';
import { CliError, oneLine } from './errors.js';

export const PASTE_PROMPT = 'Paste the authorization code: ';
const SPINNER_FRAMES = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
const SPINNER_MS = 100;

export interface TerminalUiOptions {
  provider: string;
  bucket: string;
  stdin?: NodeJS.ReadStream;
  stderr?: NodeJS.WriteStream;
  /** Opens a URL in a browser; null in proxy mode, with --no-browser, or when none is available. */
  openBrowser: BrowserOpener | null;
  /** Ctrl-C typed while the paste prompt holds the terminal in raw mode (no SIGINT is raised then). */
  onInterrupt: () => void;
}

/** Drops control characters, so a URL or code from the wire cannot drive the terminal. */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, '');
}

/** A terminal-like sink for readline's echo. */
function discard(): Writable {
  return new Writable({ write: (_chunk, _encoding, done) => done() });
}

/** The LoginUi of the command line. */
export class TerminalLoginUi implements LoginUi {
  private readonly stdin: NodeJS.ReadStream;
  private readonly stderr: NodeJS.WriteStream;
  private readonly interactive: boolean;
  private spinner: NodeJS.Timeout | undefined;
  private frame = 0;
  private announcedWait = false;

  constructor(private readonly options: TerminalUiOptions) {
    this.stdin = options.stdin ?? process.stdin;
    this.stderr = options.stderr ?? process.stderr;
    this.interactive = Boolean(this.stdin.isTTY && this.stderr.isTTY);
  }

  private say(text = ''): void {
    this.stderr.write(`${text}\n`);
  }

  started(start: LoginStart): void {
    const who = `${this.options.provider} (bucket ${this.options.bucket})`;
    let browserUrl: string;
    if (start.flow_type === 'device_code') {
      const page = printable(start.verification_uri ?? start.verification_url ?? '');
      const complete = start.verification_uri_complete ? printable(start.verification_uri_complete) : undefined;
      this.say(`To log in to ${who}, open this page in a browser on any device:`);
      this.say();
      this.say(`  ${page}`);
      this.say();
      this.say(`and enter the code: ${printable(start.user_code ?? '')}`);
      if (complete) {
        this.say();
        this.say(`Or open this link, which fills in the code${this.interactive ? ', or scan the QR code' : ''}:`);
        this.say(`  ${complete}`);
      }
      if (this.interactive) this.say(renderUnicodeCompact(complete ?? page, { border: 2 }));
      browserUrl = complete ?? page;
    } else {
      const url = printable(start.auth_url ?? '');
      if (start.flow_type === 'pkce_redirect') {
        this.say(`To log in to ${who}, open this URL in a browser, sign in and authorize:`);
        this.say();
        this.say(`  ${url}`);
        this.say();
        this.say('The page then shows an authorization code (or redirects to a page whose address holds it):');
        this.say('paste the code or that address below (it is not shown).');
      } else {
        // browser_redirect: the provider redirects to a loopback callback on the credproxy host.
        this.say(`To log in to ${who}, open this URL in a browser on the machine that runs credproxy:`);
        this.say();
        this.say(`  ${url}`);
        this.say();
        this.say('After you authorize, the browser returns to credproxy and the login completes by itself.');
      }
      browserUrl = url;
    }
    if (this.options.openBrowser) {
      this.say('(Opening it in your browser.)');
      this.options.openBrowser(browserUrl);
    }
  }

  readCode(signal: AbortSignal): Promise<string> {
    return new Promise<string>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const tty = Boolean(this.stdin.isTTY);
      // On a terminal, readline takes raw mode and would echo the paste; its output goes nowhere, so
      // the code never appears on screen (or in a recording of it).
      const rl = readline.createInterface({ input: this.stdin, ...(tty && { output: discard() }), terminal: tty });
      let settled = false;
      const finish = (settle: () => void, ending: string): void => {
        if (settled) return;
        settled = true;
        signal.removeEventListener('abort', onAbort);
        rl.close();
        this.stderr.write(ending); // the prompt had no line end of its own
        settle();
      };
      const onAbort = (): void => finish(() => reject(signal.reason), '\n');
      signal.addEventListener('abort', onAbort, { once: true });
      rl.on('SIGINT', () => this.options.onInterrupt());
      rl.on('line', (line: string) => {
        const code = line.trim();
        if (code.length > 0) finish(() => resolve(code), tty ? '(received)\n' : '\n');
        else if (tty) this.stderr.write(`\n${PASTE_PROMPT}`);
      });
      rl.on('close', () =>
        finish(
          () => reject(new CliError(tty ? 'no authorization code was entered' : 'no authorization code on stdin; pipe it in or run login on a terminal')),
          '\n',
        ),
      );
      this.stderr.write(PASTE_PROMPT);
    });
  }

  waiting(): void {
    if (!this.interactive) {
      if (!this.announcedWait) this.say('Waiting for authorization (Ctrl-C to cancel)...');
      this.announcedWait = true;
      return;
    }
    if (this.spinner) return;
    this.stderr.write('\n');
    const draw = (): void => {
      const glyph = SPINNER_FRAMES[this.frame++ % SPINNER_FRAMES.length]!;
      this.stderr.write(`\r\x1b[2K${glyph} Waiting for authorization (Ctrl-C to cancel)`);
    };
    draw();
    this.spinner = setInterval(draw, SPINNER_MS);
    this.spinner.unref();
  }

  retrying(message: string): void {
    this.clearSpinnerLine();
    this.say(`credproxy: ${oneLine(message)}; trying again`);
  }

  done(): void {
    if (this.spinner) clearInterval(this.spinner);
    this.clearSpinnerLine();
    this.spinner = undefined;
  }

  private clearSpinnerLine(): void {
    if (this.spinner) this.stderr.write('\r\x1b[2K');
  }
}
