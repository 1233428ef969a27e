/** The one function of `pgpass` (a dependency of pg, without types of its own) that the PostgreSQL store uses. */
declare module 'pgpass' {
  /** Looks up the password of `info` in PGPASSFILE or ~/.pgpass; undefined when there is none. */
  export default function pgpass(info: { host?: string; port?: number; database?: string; user?: string }, cb: (password: string | undefined) => void): void;
}
