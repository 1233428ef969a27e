/** The behaviour every store backend shares; each backend's test file runs it on a real store. */
import { expect, it } from 'vitest';
import { StoreError, type KeyStore, type TokenStore } from '../../src/store/types.js';
import { token } from './helpers.js';

export type Store = TokenStore & KeyStore;

export interface ContractSubject {
  /** A fresh, empty store. */
  open(): Promise<Store>;
  /** A second instance over the same storage as `store`, when the backend persists. */
  reopen?(store: Store): Promise<Store>;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export function storeContract(subject: ContractSubject): void {
  it('saves, reads, replaces and removes tokens', async () => {
    const s = await subject.open();
    expect(await s.getToken('p', 'default')).toBeNull();
    await s.saveToken('p', 'default', token({ scope: 'a b', account_id: 'acc-1' }));
    expect(await s.getToken('p', 'default')).toEqual(token({ scope: 'a b', account_id: 'acc-1' }));
    await s.saveToken('p', 'default', token({ access_token: 'at-2' }));
    expect(await s.getToken('p', 'default')).toEqual(token({ access_token: 'at-2' }));
    expect(await s.removeToken('p', 'default')).toBe(true);
    expect(await s.removeToken('p', 'default')).toBe(false);
    expect(await s.getToken('p', 'default')).toBeNull();
    await s.close?.();
  });

  it('lists providers and buckets sorted, dropping a provider with its last bucket', async () => {
    const s = await subject.open();
    expect(await s.listProviders()).toEqual([]);
    await s.saveToken('zeta', 'default', token());
    await s.saveToken('alpha', 'work', token());
    await s.saveToken('alpha', 'home', token());
    expect(await s.listProviders()).toEqual(['alpha', 'zeta']);
    expect(await s.listBuckets('alpha')).toEqual(['home', 'work']);
    expect(await s.listBuckets('nobody')).toEqual([]);
    await s.removeToken('zeta', 'default');
    expect(await s.listProviders()).toEqual(['alpha']);
    await s.close?.();
  });

  it('stores API keys', async () => {
    const s = await subject.open();
    expect(await s.getKey('openai')).toBeNull();
    expect(await s.hasKey('openai')).toBe(false);
    await s.setKey('openai', 'sk-1');
    await s.setKey('anthropic', 'sk-2');
    expect(await s.getKey('openai')).toBe('sk-1');
    expect(await s.hasKey('openai')).toBe(true);
    expect(await s.listKeys()).toEqual(['anthropic', 'openai']);
    await s.setKey('openai', 'sk-3');
    expect(await s.getKey('openai')).toBe('sk-3');
    expect(await s.deleteKey('openai')).toBe(true);
    expect(await s.deleteKey('openai')).toBe(false);
    expect(await s.listKeys()).toEqual(['anthropic']);
    await s.close?.();
  });

  it('hands out copies, never its own objects', async () => {
    const s = await subject.open();
    const saved = token({ nested: { a: 1 } });
    await s.saveToken('p', 'b', saved);
    saved.access_token = 'changed-after-save';
    (saved.nested as { a: number }).a = 2;
    const first = (await s.getToken('p', 'b'))!;
    first.access_token = 'changed-after-get';
    (first.nested as { a: number }).a = 3;
    expect(await s.getToken('p', 'b')).toEqual(token({ nested: { a: 1 } }));
    await s.close?.();
  });

  it('treats names like __proto__ and constructor as plain names', async () => {
    const s = await subject.open();
    await s.saveToken('__proto__', 'constructor', token());
    await s.setKey('__proto__', 'v');
    expect(await s.getToken('__proto__', 'constructor')).toEqual(token());
    expect(await s.getToken('toString', 'default')).toBeNull();
    expect(await s.listProviders()).toEqual(['__proto__']);
    expect(await s.getKey('__proto__')).toBe('v');
    expect(await s.listKeys()).toEqual(['__proto__']);
    await s.close?.();
  });

  it('rejects invalid names with StoreError invalid_name and malformed tokens with TypeError', async () => {
    const s = await subject.open();
    await expect(s.getToken('a:b', 'default')).rejects.toMatchObject({ name: 'StoreError', reason: 'invalid_name' });
    await expect(s.saveToken('p', '', token())).rejects.toBeInstanceOf(StoreError);
    await expect(s.setKey('has space', 'v')).rejects.toMatchObject({ reason: 'invalid_name' });
    await expect(s.withTokenLock('../x', 'b', async () => 1)).rejects.toMatchObject({ reason: 'invalid_name' });
    await expect(s.saveToken('p', 'b', { access_token: 'x', token_type: 'Bearer' } as never)).rejects.toBeInstanceOf(TypeError);
    expect(await s.listProviders()).toEqual([]);
    await s.close?.();
  });

  it('moves the change stamp on every write and only then', async () => {
    const s = await subject.open();
    const stamps = new Set([s.changeStamp()]);
    expect(s.changeStamp()).toBe(s.changeStamp());
    await s.saveToken('p', 'b', token());
    stamps.add(s.changeStamp());
    await s.getToken('p', 'b');
    await s.listProviders();
    expect(stamps.has(s.changeStamp())).toBe(true);
    // Same-size rewrites in quick succession must still move the stamp.
    for (let i = 0; i < 5; i++) {
      await s.saveToken('p', 'b', token({ access_token: `at-${i}` }));
      stamps.add(s.changeStamp());
    }
    await s.setKey('k', 'v');
    stamps.add(s.changeStamp());
    expect(stamps.size).toBe(8);
    await s.close?.();
  });

  it('serializes withTokenLock per (provider, bucket) and lets the body save', async () => {
    const s = await subject.open();
    let inside = 0;
    let maxInside = 0;
    const body = async (i: number) => {
      inside++;
      maxInside = Math.max(maxInside, inside);
      const current = (await s.getToken('p', 'b')) ?? token({ count: 0 });
      await sleep(2);
      await s.saveToken('p', 'b', { ...current, count: (current.count as number) + 1, access_token: `at-${i}` });
      inside--;
      return i;
    };
    const results = await Promise.all([0, 1, 2, 3, 4].map((i) => s.withTokenLock('p', 'b', () => body(i))));
    expect(results).toEqual([0, 1, 2, 3, 4]);
    expect(maxInside).toBe(1);
    expect((await s.getToken('p', 'b'))!.count).toBe(5);
    await s.close?.();
  });

  it('releases the token lock when the body throws, and allows nesting the same lock', async () => {
    const s = await subject.open();
    await expect(s.withTokenLock('p', 'b', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    const nested = await s.withTokenLock('p', 'b', () => s.withTokenLock('p', 'b', async () => 'inner'));
    expect(nested).toBe('inner');
    // Another bucket is not blocked by a held lock.
    const other = await s.withTokenLock('p', 'b', () => s.withTokenLock('p', 'other', async () => 'ok'));
    expect(other).toBe('ok');
    await s.close?.();
  });

  it('withTokenLock with an aborted signal rejects with its reason, without running the body or keeping the lock', async () => {
    const s = await subject.open();
    const reason = new Error('gave up');
    let ran = false;
    const body = async () => {
      ran = true;
    };
    await expect(s.withTokenLock('p', 'b', body, AbortSignal.abort(reason))).rejects.toBe(reason);
    expect(ran).toBe(false);
    expect(await s.withTokenLock('p', 'b', async () => 'free')).toBe('free');
    await s.close?.();
  });

  it('an abort while waiting behind another holder gives up the place in the queue, not the holder\'s lock', async () => {
    const s = await subject.open();
    let letGo!: () => void;
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const holder = s.withTokenLock('p', 'b', () => {
      held();
      return new Promise<void>((resolve) => (letGo = resolve));
    });
    await holding;
    const ran: string[] = [];
    const aborter = new AbortController();
    const aborted = s.withTokenLock('p', 'b', async () => void ran.push('aborted'), aborter.signal);
    const next = s.withTokenLock('p', 'b', async () => void ran.push('next'));
    const reason = new Error('timed out');
    aborter.abort(reason);
    await expect(aborted).rejects.toBe(reason);
    // The holder still holds: the one queued behind the aborted waiter has not run.
    await new Promise((resolve) => setImmediate(resolve));
    expect(ran).toEqual([]);
    letGo();
    await holder;
    await next;
    expect(ran).toEqual(['next']);
    await s.close?.();
  });

  if (subject.reopen) {
    const reopen = subject.reopen;
    it('shows writes of another instance and moves its stamp', async () => {
      const a = await subject.open();
      const b = await reopen(a);
      await a.saveToken('p', 'b', token());
      expect(await b.getToken('p', 'b')).toEqual(token());
      const before = b.changeStamp();
      await a.saveToken('p', 'b', token({ access_token: 'at-9' }));
      expect(b.changeStamp()).not.toBe(before);
      expect((await b.getToken('p', 'b'))!.access_token).toBe('at-9');
      await a.setKey('k', 'v1');
      expect(await b.getKey('k')).toBe('v1');
      await b.deleteKey('k');
      expect(await a.hasKey('k')).toBe(false);
      await a.close?.();
      await b.close?.();
    });
  }
}
