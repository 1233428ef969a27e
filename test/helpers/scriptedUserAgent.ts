/**
 * The scripted browser of the test authorization server: minimal HTML pages, form parsing, and a
 * user agent with a cookie jar that follows redirects by hand.
 */
export const escapeHtml = (s: string) =>
  s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
export const unescapeHtml = (s: string) =>
  s.replace(/&quot;/g, '"').replace(/&#39;/g, "'").replace(/&lt;/g, '<').replace(/&gt;/g, '>').replace(/&amp;/g, '&');

/** Minimal pages around oidc-provider's own forms; the data-* markers let the scripted user agent read the outcome. */
export function page(kind: string, content: string, error = ''): string {
  return `<!DOCTYPE html><html><body><main data-page="${kind}" data-error="${escapeHtml(error)}">${content}</main></body></html>`;
}
export function pageKind(html: string): { kind: string; error: string } {
  const m = /<main data-page="([^"]*)" data-error="([^"]*)"/.exec(html);
  return { kind: m?.[1] ?? 'unknown', error: unescapeHtml(m?.[2] ?? '') };
}

export interface HtmlForm {
  action: string;
  fields: Record<string, string>;
}
export function parseForm(html: string, baseUrl: URL): HtmlForm {
  const form = /<form\b([^>]*)>([\s\S]*?)<\/form>/i.exec(html);
  if (!form) throw new Error(`No form on the page:\n${html.slice(0, 500)}`);
  const attrs = (tag: string) => Object.fromEntries([...tag.matchAll(/([\w:-]+)\s*=\s*"([^"]*)"/g)].map((m) => [m[1], unescapeHtml(m[2] ?? '')]));
  const fields: Record<string, string> = {};
  for (const input of (form[2] ?? '').matchAll(/<input\b([^>]*)>/gi)) {
    const a = attrs(input[1] ?? '');
    if (a.name) fields[a.name] = a.value ?? '';
  }
  return { action: new URL(attrs(form[1] ?? '').action ?? '', baseUrl).href, fields };
}

/**
 * A scripted browser for the issuer's origin: a cookie jar with path matching, manual redirects (so the
 * hop that leaves the issuer is returned, not fetched), and GET/POST of url-encoded forms.
 */
export class ScriptedUserAgent {
  private readonly jar = new Map<string, { name: string; value: string; path: string }>();

  constructor(private readonly origin: string) {}

  /** Follows redirects within the issuer; returns either the first redirect out of it or the page it lands on. */
  async navigate(
    start: URL,
    init: { form?: Record<string, string>; onRedirect?: (url: URL) => URL } = {},
  ): Promise<{ leftTo: URL } | { url: URL; status: number; html: string }> {
    let url = start;
    let form = init.form;
    for (let hop = 0; hop < 20; hop++) {
      if (url.origin !== this.origin) return { leftTo: url };
      const res = await fetch(url, {
        method: form ? 'POST' : 'GET',
        redirect: 'manual',
        headers: { cookie: this.cookieHeader(url), ...(form ? { 'content-type': 'application/x-www-form-urlencoded' } : {}) },
        body: form ? new URLSearchParams(form).toString() : undefined,
      });
      this.store(res.headers.getSetCookie());
      const location = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && location) {
        await res.body?.cancel();
        url = new URL(location, url);
        if (init.onRedirect) url = init.onRedirect(url);
        form = undefined;
        continue;
      }
      return { url, status: res.status, html: await res.text() };
    }
    throw new Error(`Too many redirects from ${start.href}`);
  }

  private cookieHeader(url: URL): string {
    const pathMatches = (cookiePath: string) =>
      url.pathname === cookiePath ||
      (url.pathname.startsWith(cookiePath) && (cookiePath.endsWith('/') || url.pathname[cookiePath.length] === '/'));
    return [...this.jar.values()]
      .filter((c) => pathMatches(c.path))
      .sort((a, b) => b.path.length - a.path.length)
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  private store(setCookies: string[]): void {
    for (const header of setCookies) {
      const [pair = '', ...attributes] = header.split(';').map((s) => s.trim());
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq);
      const value = pair.slice(eq + 1);
      let path = '/';
      let expired = value === '';
      for (const attribute of attributes) {
        const [k = '', v = ''] = attribute.split(/=(.*)/s);
        const key = k.toLowerCase();
        if (key === 'path' && v.startsWith('/')) path = v;
        if (key === 'max-age' && Number(v) <= 0) expired = true;
        if (key === 'expires' && Date.parse(v) <= Date.now()) expired = true;
      }
      const id = `${name}\u0000${path}`;
      if (expired) this.jar.delete(id);
      else this.jar.set(id, { name, value, path });
    }
  }
}
