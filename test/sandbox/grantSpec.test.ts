/** `credproxy run`'s grant options turned into a grant_open payload (PROTOCOL.md §7, §11). */
import { describe, expect, it } from 'vitest';
import { GrantSpecError, grantRequest, parseAllow } from '../../src/sandbox/grantSpec.js';

const refused = (fn: () => unknown): GrantSpecError => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(GrantSpecError);
    return err as GrantSpecError;
  }
  throw new Error('expected a GrantSpecError');
};

describe('--provider', () => {
  it('P alone grants its default bucket only', () => {
    expect(grantRequest(['github'], [], undefined).providers).toEqual({ github: ['default'] });
  });

  it('P:a,b grants exactly those buckets', () => {
    expect(grantRequest(['anthropic:work,me@home'], [], undefined).providers).toEqual({ anthropic: ['work', 'me@home'] });
  });

  it('P:* grants every bucket', () => {
    expect(grantRequest(['gemini:*'], [], undefined).providers).toEqual({ gemini: '*' });
  });

  it('repeated providers merge their buckets without duplicates', () => {
    expect(grantRequest(['p:a', 'p:b,a', 'p', 'q:x'], [], undefined).providers).toEqual({ p: ['a', 'b', 'default'], q: ['x'] });
  });

  it('* wins over named buckets in either order', () => {
    expect(grantRequest(['p:a', 'p:*'], [], undefined).providers).toEqual({ p: '*' });
    expect(grantRequest(['p:*', 'p:a'], [], undefined).providers).toEqual({ p: '*' });
  });

  it.each([
    ['bad provider!', /^--provider "bad provider!": Invalid provider name/],
    [':a', /^--provider "": Invalid provider name/],
    ['p:', /^--provider p: bucket "": Invalid bucket name/],
    ['p:a,,b', /^--provider p: bucket "": Invalid bucket name/],
    ['p:a b', /^--provider p: bucket "a b": Invalid bucket name/],
    ['p:*,a', /^--provider p: bucket "\*": Invalid bucket name/],
  ])('refuses %j with a message naming the option', (spec, message) => {
    expect(refused(() => grantRequest([spec], [], undefined)).message).toMatch(message);
  });

  it('checks the buckets of a provider already granted every bucket', () => {
    expect(refused(() => grantRequest(['p:*', 'p:b d'], [], undefined)).message).toMatch(/^--provider p: bucket "b d": Invalid bucket name/);
  });
});

describe('--key', () => {
  it('keeps each key once', () => {
    expect(grantRequest([], ['openai', 'gh.token', 'openai'], undefined).keys).toEqual(['openai', 'gh.token']);
  });

  it('refuses a bad key name, naming --key', () => {
    expect(refused(() => grantRequest([], ['me@work'], undefined)).message).toMatch(/^--key "me@work": Invalid key name/);
  });
});

describe('--allow', () => {
  it('parses op groups, trimmed and without duplicates', () => {
    expect(parseAllow('read, refresh,read')).toEqual(['read', 'refresh']);
    expect(parseAllow('write')).toEqual(['write']);
    expect(parseAllow('read,refresh,login,write')).toEqual(['read', 'refresh', 'login', 'write']);
  });

  it.each(['admin', 'read,admin', 'Read', 'grant_open', ''])('refuses %j by name', (value) => {
    const err = refused(() => parseAllow(value));
    expect(err.message).toMatch(/^--allow: unknown op group /);
    expect(err.message).toContain(JSON.stringify(value.split(',').find((v) => v !== 'read')));
    expect(err.message).toContain('read, refresh, login, write');
  });

  it('replaces the default ops when given', () => {
    expect(grantRequest(['github'], ['openai'], 'read').ops).toEqual(['read']);
    expect(refused(() => grantRequest(['github'], [], 'read,admin')).message).toMatch(/"admin"/);
  });
});

describe('default ops (§7)', () => {
  it('providers named: read, refresh, login', () => {
    expect(grantRequest(['github'], [], undefined).ops).toEqual(['read', 'refresh', 'login']);
    expect(grantRequest(['github'], ['openai'], undefined).ops).toEqual(['read', 'refresh', 'login']);
  });

  it('only keys named: read', () => {
    expect(grantRequest([], ['openai'], undefined)).toEqual({ providers: {}, keys: ['openai'], ops: ['read'], inject: [] });
  });

  it('nothing named: nothing', () => {
    expect(grantRequest([], [], undefined)).toEqual({ providers: {}, keys: [], ops: [], inject: [] });
  });
});

describe('--inject', () => {
  it('ROUTE or ROUTE:BUCKET; injected credentials add no op group', () => {
    expect(grantRequest([], [], undefined, ['anthropic', 'github:work'])).toEqual({ providers: {}, keys: [], ops: [], inject: [{ route: 'anthropic' }, { route: 'github', bucket: 'work' }] });
  });

  it('refuses bad route and bucket names by option', () => {
    expect(() => grantRequest([], [], undefined, ['bad name'])).toThrow(/^--inject "bad name": /);
    expect(() => grantRequest([], [], undefined, ['github:b d'])).toThrow(/^--inject github: bucket "b d": Invalid bucket name/);
  });
});
