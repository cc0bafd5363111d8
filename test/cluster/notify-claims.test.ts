// Several nodes follow one log, and every node's replica hands its notifications every event: people are told once,
// not once per node (response/notify-claims-pg.ts, on a real PostgreSQL 15 started by this file). Two nodes' response
// services, on copies of one SQLite file (as two replicas hold the same incidents), hear the same opened and escalated
// events at the same moment; a real webhook receiver on 127.0.0.1 gets each notification once. Should the claim fail
// (PostgreSQL gone), a node sends all the same.
import { copyFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { openStore, type Store } from '../../core/db.js';
import { Bus } from '../../core/bus.js';
import { createManualClock } from '../../response/clock.js';
import { createResponse, type Response } from '../../response/index.js';
import type { CommittedEvent } from '../../response/incidents.js';
import { pgNotificationClaims } from '../../response/notify-claims-pg.js';
import { buildTree, ingest, log, source, sos, testConfig } from '../response/helpers.js';
import { useStoreEngines } from '../helpers/postgres.js';

// band 23: no other test file's (grep `band:` and `BAND =` under test/)
const env = useStoreEngines({ name: 'notify-claims', band: 23 });
const closers: (() => unknown)[] = [];
afterAll(async () => { for (const c of closers.reverse()) await c(); });

async function receiver() {
  const got: string[] = [];
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      got.push(req.url ?? '');
      res.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closers.push(() => new Promise((r) => { server.closeAllConnections(); server.close(r); }));
  const port = (server.address() as AddressInfo).port;
  return { got, url: (path: string) => `http://127.0.0.1:${port}${path}` };
}

describe('notifications with several nodes on one log', () => {
  it('each event people are told of is sent by one node; a node whose claim fails sends all the same', async () => {
    const rx = await receiver();
    const config = testConfig({
      budgets: { P1: { ackMs: 60_000 } },
      notifiers: { backoffMs: 20, broadcast: ['global'], channels: { global: { url: rx.url('/global'), allowPrivate: true }, 'unit-g1': { url: rx.url('/unit/g1'), allowPrivate: true } } },
    });
    // the incidents, written once; each node's file a copy of it (its replica holds the same)
    const clock = createManualClock();
    const origin = openStore(join(env.dir, 'origin.db'));
    const bus = new Bus();
    const writer = createResponse({ store: origin, bus, config, log, clock });
    buildTree(writer.network);
    writer.network.updateUnit('g1', { webhook: 'unit-g1' });
    const committed: CommittedEvent[] = [];
    for (let i = 0; i < 10; i++) {
      committed.push(...ingest({ store: origin, response: writer } as never, sos(), source({ deviceId: `dev-${i}` }, clock.now())));
    }
    await writer.close();
    origin.close();
    expect(committed.filter((e) => e.type === 'opened')).toHaveLength(10);

    const { pool } = await env.pgs().fresh('claims');
    const nodes: { store: Store; bus: Bus; response: Response }[] = [];
    for (const name of ['a', 'b']) {
      const file = join(env.dir, `${name}.db`);
      copyFileSync(join(env.dir, 'origin.db'), file);
      const store = openStore(file);
      const nodeBus = new Bus();
      const response = createResponse({ store, bus: nodeBus, config, log, clock, claimNotifications: pgNotificationClaims(pool, name) });
      response.notifications.start();
      nodes.push({ store, bus: nodeBus, response });
      closers.push(async () => { await response.close(); store.close(); });
    }
    // both replicas hand on the same events at the same moment
    for (const e of committed) for (const n of nodes) n.bus.emit('incident-event', e);
    await Promise.all(nodes.map((n) => n.response.notifications.idle()));
    // 10 opened SOSes: the broadcast channel and the grid's, once each
    expect(rx.got.filter((p) => p === '/global')).toHaveLength(10);
    expect(rx.got.filter((p) => p === '/unit/g1')).toHaveLength(10);
    const { rows } = await pool.query<{ node: string; n: string }>('SELECT node, count(*) AS n FROM notification_claims GROUP BY node');
    expect(rows.reduce((n, r) => n + Number(r.n), 0)).toBe(10);

    // PostgreSQL gone for node b: it sends what it hears all the same (a notification twice rather than none)
    const dead = new pg.Pool({ host: '127.0.0.1', port: 1, user: 'nobody', database: 'none', connectionTimeoutMillis: 500 });
    dead.on('error', () => undefined);
    const lonelyBus = new Bus();
    const lonely = createResponse({ store: nodes[1]!.store, bus: lonelyBus, config, log, clock, claimNotifications: pgNotificationClaims(dead, 'b') });
    closers.push(async () => { await lonely.close(); await dead.end(); });
    lonely.notifications.start();
    const before = rx.got.length;
    lonelyBus.emit('incident-event', committed.find((e) => e.type === 'opened')!);
    await lonely.notifications.idle();
    expect(rx.got.slice(before).sort()).toEqual(['/global', '/unit/g1']);
  });
});
