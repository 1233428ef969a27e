/** What a sandbox sees of the host: --mount parsing, the workspace, masks and path mapping. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { masksFor, MountError, parseMount, sandboxPath, workspaceMounts } from '../../src/sandbox/mounts.js';

let root: string;
let ws: string;

beforeEach(() => {
  root = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'cpmnt-')));
  ws = path.join(root, 'ws');
  fs.mkdirSync(path.join(ws, 'sub'), { recursive: true });
});

afterEach(() => fs.rmSync(root, { recursive: true, force: true }));

const mountError = (fn: () => unknown): MountError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(MountError);
    return err as MountError;
  }
  throw new Error('expected a MountError');
};

describe('parseMount', () => {
  it('SRC: the same path inside, writable', () => {
    expect(parseMount(ws, '/')).toEqual({ source: ws, target: ws, readOnly: false });
  });

  it('SRC:DST', () => {
    expect(parseMount(`${ws}:/work`, '/')).toEqual({ source: ws, target: '/work', readOnly: false });
  });

  it('SRC:ro and SRC:rw', () => {
    expect(parseMount(`${ws}:ro`, '/')).toEqual({ source: ws, target: ws, readOnly: true });
    expect(parseMount(`${ws}:rw`, '/')).toEqual({ source: ws, target: ws, readOnly: false });
  });

  it('SRC:DST:ro', () => {
    expect(parseMount(`${ws}:/work:ro`, '/')).toEqual({ source: ws, target: '/work', readOnly: true });
  });

  it('resolves a relative SRC against the working directory', () => {
    expect(parseMount('ws', root)).toEqual({ source: ws, target: ws, readOnly: false });
    expect(parseMount('../sub:/s:ro', path.join(ws, 'sub'))).toEqual({ source: path.join(ws, 'sub'), target: '/s', readOnly: true });
  });

  it('takes a relative DST from the sandbox root, normalised', () => {
    expect(parseMount(`${ws}:work/../w2/`, '/')).toEqual({ source: ws, target: '/w2', readOnly: false });
  });

  it('mounts the real directory of a symlinked SRC at the path that was named', () => {
    const link = path.join(root, 'link');
    fs.symlinkSync(ws, link);
    expect(parseMount('link', root)).toEqual({ source: ws, target: link, readOnly: false });
  });

  it('refuses a SRC that does not exist, naming it', () => {
    const err = mountError(() => parseMount('missing:/x', root));
    expect(err.message).toBe(`--mount "missing:/x": ${path.join(root, 'missing')} does not exist`);
  });

  it.each(['a:b:c', 'a:b:c:ro', '', ':ro', 'ws:', ':/x', 'ws::ro'])("refuses %j (':' in paths, empty parts)", (spec) => {
    expect(mountError(() => parseMount(spec, root)).message).toBe(`--mount ${JSON.stringify(spec)}: expected SRC[:DST][:ro] (paths containing ':' are not supported)`);
  });
});

describe('workspaceMounts', () => {
  it('defaults to the working directory, through its real path', () => {
    const link = path.join(root, 'cwd-link');
    fs.symlinkSync(path.join(ws, 'sub'), link);
    const real = path.join(ws, 'sub');
    expect(workspaceMounts(link, [], [])).toEqual([{ source: real, target: real, readOnly: false }]);
  });

  it('returns the --mounts as given instead of the working directory', () => {
    const mounts = [parseMount(`${ws}:/work:ro`, '/'), parseMount(path.join(root), '/')];
    expect(workspaceMounts(path.join(ws, 'sub'), mounts, ['/nonexistent-credproxy-test/.data'])).toEqual(mounts);
  });

  it('refuses the root directory as the working directory or a --mount', () => {
    expect(mountError(() => workspaceMounts('/', [], [])).message).toMatch(/^run from a project directory, not \//);
    expect(mountError(() => workspaceMounts(ws, [parseMount('/', ws)], [])).message).toBe('--mount /: the root directory would expose the whole host');
  });

  it("refuses a mount over the sandbox's root", () => {
    expect(mountError(() => workspaceMounts(ws, [parseMount(`${ws}:/`, '/')], [])).message).toBe(`--mount ${ws}:/ would replace the sandbox's root`);
  });

  it('refuses a mount inside (or equal to) a protected path, naming it', () => {
    const data = path.join(root, 'data');
    fs.mkdirSync(path.join(data, 'inner'), { recursive: true });
    for (const source of [data, path.join(data, 'inner')]) {
      const err = mountError(() => workspaceMounts(ws, [{ source, target: '/w', readOnly: true }], [ws + '-unrelated', data]));
      expect(err.message).toBe(`${source} is inside ${data}, which holds credentials; it cannot be mounted into a sandbox`);
    }
    // The working directory, when it is the workspace, is checked the same way.
    expect(mountError(() => workspaceMounts(path.join(data, 'inner'), [], [data])).message).toContain(`is inside ${data}`);
  });

  it('accepts a READ-ONLY mount that contains a protected path (masked instead), and a mount that merely shares its prefix', () => {
    expect(workspaceMounts(ws, [parseMount(`${ws}:ro`, '/')], [path.join(ws, '.data')])).toHaveLength(1);
    fs.mkdirSync(`${ws}2`);
    expect(workspaceMounts(`${ws}2`, [], [ws])).toEqual([{ source: `${ws}2`, target: `${ws}2`, readOnly: false }]);
  });

  it('refuses a WRITABLE mount that holds a protected path, existing or not (a mask could be moved aside, a file planted)', () => {
    expect(mountError(() => workspaceMounts(ws, [], [path.join(ws, '.data')])).message).toBe(
      `the working directory ${ws} holds ${path.join(ws, '.data')}, which holds credentials; mount a project directory below it, or add :ro`,
    );
    expect(mountError(() => workspaceMounts(ws, [parseMount(ws, '/')], [path.join(ws, 'not-yet', 'config.json')])).message).toMatch(/^--mount .* holds .*not-yet/);
  });

  it('refuses a writable home directory or one above it, but not a project inside it', () => {
    const home = path.join(ws, 'sub');
    expect(mountError(() => workspaceMounts(home, [], [], home)).message).toMatch(/would make your home directory writable/);
    expect(mountError(() => workspaceMounts(ws, [], [], home)).message).toMatch(/would make your home directory writable/);
    expect(workspaceMounts(ws, [parseMount(`${ws}:ro`, '/')], [], home)).toHaveLength(1);
    fs.mkdirSync(path.join(home, 'project'));
    expect(workspaceMounts(path.join(home, 'project'), [], [], home)).toHaveLength(1);
  });
});

describe('masksFor', () => {
  beforeEach(() => {
    fs.mkdirSync(path.join(ws, '.data'));
    fs.writeFileSync(path.join(ws, 'sub', 'creds.json'), 'x');
  });

  it('masks a protected directory with a dir mask and a protected file with a file mask', () => {
    const mounts = [{ source: ws, target: ws, readOnly: false }];
    expect(masksFor(mounts, [path.join(ws, '.data'), path.join(ws, 'sub', 'creds.json')])).toEqual([
      { target: path.join(ws, '.data'), kind: 'dir' },
      { target: path.join(ws, 'sub', 'creds.json'), kind: 'file' },
    ]);
  });

  it('maps the masks through SRC:DST', () => {
    const mounts = [parseMount(`${ws}:/work:ro`, '/')];
    expect(masksFor(mounts, [path.join(ws, '.data'), path.join(ws, 'sub', 'creds.json')])).toEqual([
      { target: '/work/.data', kind: 'dir' },
      { target: '/work/sub/creds.json', kind: 'file' },
    ]);
  });

  it('masks under each mount that shows the path', () => {
    const mounts = [
      { source: ws, target: '/a', readOnly: false },
      { source: path.join(ws, 'sub'), target: '/b', readOnly: false },
    ];
    expect(masksFor(mounts, [path.join(ws, 'sub', 'creds.json')])).toEqual([
      { target: '/a/sub/creds.json', kind: 'file' },
      { target: '/b/creds.json', kind: 'file' },
    ]);
  });

  it('gives nothing for a protected path outside the mounts, missing, the mount itself, or sharing a prefix', () => {
    fs.mkdirSync(`${ws}-data`);
    const mounts = [{ source: ws, target: '/work', readOnly: false }];
    expect(masksFor(mounts, [path.join(root, 'elsewhere'), path.join(ws, 'not-there'), ws, `${ws}-data`])).toEqual([]);
  });
});

describe('sandboxPath', () => {
  const mounts = [
    { source: '/host/ws', target: '/work', readOnly: false },
    { source: '/host/other', target: '/host/other', readOnly: true },
  ];

  it('maps a host path through the mount that holds it', () => {
    expect(sandboxPath('/host/ws', mounts)).toBe('/work');
    expect(sandboxPath('/host/ws/a/b', mounts)).toBe('/work/a/b');
    expect(sandboxPath('/host/other/x', mounts)).toBe('/host/other/x');
  });

  it('is undefined outside every mount (a shared prefix is not inside)', () => {
    expect(sandboxPath('/host/ws2', mounts)).toBeUndefined();
    expect(sandboxPath('/host', mounts)).toBeUndefined();
    expect(sandboxPath('/host/ws', [])).toBeUndefined();
  });
});
