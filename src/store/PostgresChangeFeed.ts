/**
 * What one process knows of a PostgreSQL store's changes: the generation every write bumps, learned
 * from its own writes, from NOTIFY on a listener connection, and from a re-read of the generation
 * row whenever that connection (re)connects — so a notification missed while it was away is still
 * caught. It turns that into the store's change stamp and health, and reconnects with backoff.
 */
import { EventEmitter } from 'node:events';
import type { ClientConfig } from 'pg';
import { CHANGE_CHANNEL } from './postgresSchema.js';
import { StoreError } from './types.js';

type PgModule = (typeof import('pg'))['default'];
type PgClient = InstanceType<PgModule['Client']>;

/** Where this process learned of a new generation. */
export type GenerationSource = 'write' | 'notify' | 'reconnect' | 'probe';

export interface StoreHealth {
  state: 'ok' | 'degraded';
  detail: string;
}

export interface ChangeFeedOptions {
  pg: PgModule;
  config: ClientConfig;
  /** "host/db", for messages. */
  target: string;
  now: () => number;
  sleep: (ms: number) => Promise<void>;
  log: (line: string) => void;
  /** How long after losing the database the stamp still vouches for what a cache holds. */
  offlineServeMs: number;
  /**
   * How often the listener is asked for the generation (default 10 s). A connection that a NAT or
   * load balancer dropped without closing delivers no NOTIFY and no error; only a query it cannot
   * answer (the config's query timeout) shows that it is gone.
   */
  probeMs?: number;
}

const DEFAULT_PROBE_MS = 10_000;
const GENERATION_QUERY = 'SELECT store_id, generation FROM credproxy_generation WHERE id = 1';

const MAX_BACKOFF_MS = 10_000;

export class PostgresChangeFeed {
  /** 'generation' (value, source), 'connected' (generation), 'disconnected'. */
  readonly events = new EventEmitter();
  private listener: PgClient | null = null;
  private storeId = '';
  private generation = -1;
  /** Moved when a write's outcome is unknown (the connection broke at commit). */
  private epoch = 0;
  private lostAt: number | null = null;
  private closed = false;
  private probeTimer: NodeJS.Timeout | null = null;
  private probing = false;

  constructor(private readonly options: ChangeFeedOptions) {}

  /** Connects the listener; the first connection's failure is the caller's (open fails with it). */
  start(): Promise<void> {
    return this.connect();
  }

  /**
   * `storeId:generation:epoch` while the listener is connected, and for `offlineServeMs` after it
   * lost the database; then a value of its own, so a cache stops serving what it cannot confirm.
   */
  stamp(): string {
    const since = this.lostAt;
    if (since !== null && this.options.now() - since >= this.options.offlineServeMs) return `offline:${since}`;
    return `${this.storeId}:${this.generation}:${this.epoch}`;
  }

  /** Since when (epoch ms) the database has been unreachable, or null while connected. */
  get disconnectedSince(): number | null {
    return this.lostAt;
  }

  /** The server process of the listener (pg_stat_activity.pid), or null while disconnected. */
  get listenerBackendPid(): number | null {
    return (this.listener as unknown as { processID?: number } | null)?.processID ?? null;
  }

  health(): StoreHealth {
    const { target, now, offlineServeMs } = this.options;
    if (this.lostAt === null) return { state: 'ok', detail: `PostgreSQL ${target}: connected` };
    const cached = now() - this.lostAt < offlineServeMs ? 'still-valid cached tokens are served' : 'cached tokens are no longer served';
    return {
      state: 'degraded',
      detail: `PostgreSQL ${target} unreachable since ${new Date(this.lostAt).toISOString()}; ${cached}, writes and refreshes fail until it is back`,
    };
  }

  /** A generation this process learned of; older or repeated ones are ignored. */
  advance(generation: number, source: GenerationSource): void {
    if (!(generation > this.generation)) return;
    this.generation = generation;
    this.events.emit('generation', generation, source);
  }

  /** A write may or may not have landed: nothing cached before it can be trusted. */
  uncertain(): void {
    this.epoch++;
  }

  async close(): Promise<void> {
    this.closed = true;
    this.stopProbing();
    const listener = this.listener;
    this.listener = null;
    await listener?.end().catch(() => {});
  }

  /** LISTEN first, then read the generation: a write between the two is seen at least once. */
  private async connect(): Promise<void> {
    const client = new this.options.pg.Client(this.options.config);
    client.on('error', () => this.lost(client));
    client.on('end', () => this.lost(client));
    try {
      await client.connect();
      client.on('notification', (n) => {
        if (n.channel === CHANGE_CHANNEL && n.payload) this.advance(Number(n.payload), 'notify');
      });
      await client.query(`LISTEN ${CHANGE_CHANNEL}`);
      const { rows } = await client.query<{ store_id: string; generation: string }>(GENERATION_QUERY);
      const row = rows[0];
      if (!row) throw new StoreError('corrupt', `The PostgreSQL store at ${this.options.target} lacks its generation row`);
      if (this.storeId !== row.store_id) {
        // Another database behind the same URL (restored, recreated): nothing known so far holds.
        this.storeId = row.store_id;
        this.generation = -1;
      }
      this.listener = client;
      this.advance(Number(row.generation), 'reconnect');
      this.stopProbing();
      this.probeTimer = setInterval(() => void this.probe(client), this.options.probeMs ?? DEFAULT_PROBE_MS);
      this.probeTimer.unref();
    } catch (err) {
      client.removeAllListeners('end');
      client.removeAllListeners('error');
      client.on('error', () => {});
      await client.end().catch(() => {});
      throw err;
    }
  }

  /** Asks the listener for the generation: a change whose NOTIFY was lost is caught, and a dead connection is noticed. */
  private async probe(client: PgClient): Promise<void> {
    if (this.probing || this.listener !== client) return;
    this.probing = true;
    try {
      const { rows } = await client.query<{ store_id: string; generation: string }>(GENERATION_QUERY);
      const row = rows[0];
      if (this.listener !== client) return;
      // Another database behind the URL now: reconnecting starts over with it.
      if (!row || row.store_id !== this.storeId) return this.drop(client);
      this.advance(Number(row.generation), 'probe');
    } catch {
      // No answer within the query timeout: as good as gone, whatever the socket says.
      if (this.listener === client) this.drop(client);
    } finally {
      this.probing = false;
    }
  }

  /** Tears down a listener that can no longer be trusted and reconnects. */
  private drop(client: PgClient): void {
    (client as unknown as { connection?: { stream?: { destroy(): void } } }).connection?.stream?.destroy();
    this.lost(client);
  }

  private stopProbing(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private lost(client: PgClient): void {
    if (this.closed || this.listener !== client) return;
    this.stopProbing();
    this.listener = null;
    this.lostAt = this.options.now();
    this.options.log(`store: lost the connection to PostgreSQL ${this.options.target}; serving still-valid cached tokens, writes fail until it is back`);
    this.events.emit('disconnected');
    void this.reconnect();
  }

  private async reconnect(): Promise<void> {
    for (let attempt = 0; !this.closed; attempt++) {
      // 250 ms doubling to 10 s, ±25 % so a fleet does not reconnect in step after a restart.
      await this.options.sleep(Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(attempt, 6)) * (0.75 + Math.random() / 2));
      if (this.closed) return;
      try {
        await this.connect();
      } catch {
        continue;
      }
      const downMs = this.options.now() - (this.lostAt ?? this.options.now());
      this.lostAt = null;
      this.options.log(`store: reconnected to PostgreSQL ${this.options.target} after ${Math.round(downMs / 1000)} s (generation ${this.generation})`);
      this.events.emit('connected', this.generation);
      return;
    }
  }
}
