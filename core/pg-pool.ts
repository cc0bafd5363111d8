// Connections to cluster mode's shared store (config `postgres`): a pool per thread that uses it, and single clients
// for LISTEN. The password comes from postgres.passwordFile; the URL holds none.
import pg from 'pg';
import type { Config } from './config.js';
import type { Logger } from './logger.js';
import { readSecretFile } from './secret-file.js';

export type PgSettings = Config['postgres'];

function connection(s: PgSettings, application: string): pg.ClientConfig {
  if (!s.url || !s.passwordFile) throw new Error('postgres.url and postgres.passwordFile are needed for the PostgreSQL store');
  const password = readSecretFile(s.passwordFile, 'postgres.passwordFile', `the PostgreSQL password of ${s.username}`);
  // the URL's parts, not the URL itself: node-postgres lets a connection string's (empty) user override `user`
  const u = new URL(s.url);
  return {
    host: u.hostname, port: Number(u.port || 5432), database: decodeURIComponent(u.pathname.slice(1)),
    user: s.username, password, application_name: application, connectionTimeoutMillis: 10_000,
    // a connection that died without a word (a half-open TCP link, a server gone) must fail its batch within bounds,
    // not hold the writer's chain and the log's head lock for minutes: TCP keepalive, and the server's own limits
    keepAlive: true, keepAliveInitialDelayMillis: 10_000,
    query_timeout: 60_000,
    options: '-c statement_timeout=30000 -c lock_timeout=30000 -c idle_in_transaction_session_timeout=60000',
  };
}

/** a pool; a connection the server drops (a restart, a failover) is logged and replaced, never the process's end */
export function openPgPool(s: PgSettings, log: Logger, application: string): pg.Pool {
  // idle connections are kept (a small pool of a long-running service): no connect on the alarm path after a quiet spell
  const pool = new pg.Pool({ ...connection(s, application), max: s.poolSize, idleTimeoutMillis: 0 });
  pool.on('error', (err) => log.warn({ err }, 'a PostgreSQL connection of the pool was lost; the next query opens another'));
  pool.on('connect', (client) => client.on('error', (err) => log.warn({ err }, 'a PostgreSQL connection in use was lost; its transaction fails and is not acknowledged')));
  return pool;
}

/** a factory of single connections (LISTEN) */
export function pgClients(s: PgSettings, application: string): () => pg.Client {
  const c = connection(s, application);
  return () => new pg.Client(c);
}
