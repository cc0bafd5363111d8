import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { DEVICE_COMMAND_TYPES, DEVICE_KINDS, DEVICE_STATES, topics, type DeviceKind } from '../../core/contracts.js';
import pLimit from 'p-limit';
import { EldergateError, ForbiddenError, ValidationError } from '../../core/errors.js';
import { auditActor, type AuditInput } from '../../core/audit.js';
import { type DeviceAccount, type DeviceFilter, type DeviceRow } from '../../devices/registry.js';
import type { UnitScope } from '../../response/network.js';
import { ACCOUNT_SCHEMES } from '../../devices/schema.js';
import { IMPORT_MAX_BYTES, csvPieces, parseDeviceCsv } from '../../devices/import.js';
import { KINDS } from '../../devices/kinds/index.js';
import type { AuthUser } from '../../core/users.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { ErrorBody, IdParam, Paging } from './common.js';
import { blankState, type Supervision } from '../../gateway/device-state.js';
import { SUPERVISION_STATES } from '../../gateway/state-store.js';
import { inPageSlices } from '../../core/page-slices.js';

const Kind = Type.Union(DEVICE_KINDS.map((k) => Type.Literal(k)));
const Nullable = <T extends import('@sinclair/typebox').TSchema>(t: T) => Type.Union([t, Type.Null()]);

const StateBody = Type.Object({
  online: Type.Boolean(),
  lastSeen: Nullable(Type.Integer()),
  connectedAt: Nullable(Type.Integer()),
  battery: Nullable(Type.Integer()),
  signal: Nullable(Type.Integer()),
  mains: Nullable(Type.Boolean()),
  position: Nullable(Type.Object({}, { additionalProperties: true })),
  supervision: Type.String(),
  unreadableCount: Type.Integer(),
  lastUnreadableAt: Nullable(Type.Integer()),
  lastUnreadableReason: Nullable(Type.String()),
  flags: Type.Array(Type.String()),
});

export const DeviceBody = Type.Object({
  id: Type.String(),
  kind: Kind,
  serial: Type.String(),
  model: Nullable(Type.String()),
  firmware: Nullable(Type.String()),
  state: Type.Union(DEVICE_STATES.map((s) => Type.Literal(s))),
  residentId: Nullable(Type.String()),
  unitId: Nullable(Type.String()),
  power: Type.String(),
  config: Type.Object({}, { additionalProperties: true }),
  accountScheme: Nullable(Type.String()),
  account: Nullable(Type.String({ description: "the account identifier the device's alarms arrive under on a shared channel (unique; admins set it)" })),
  notes: Nullable(Type.String()),
  test: Type.Boolean({ description: "a test run's device: its incidents are test incidents (shown apart, never escalated, not in KPIs)" }),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
  secretRotatedAt: Type.Integer(),
  live: StateBody,
});

const Credentials = Type.Object({
  id: Type.String(),
  kind: Kind,
  serial: Type.String(),
  secret: Type.String({ description: 'shown only in this answer: store it in the device now' }),
  terminal: Type.Optional(Type.Object({
    protocol: Type.String({ description: 'watch | jt808 | dc09' }),
    host: Type.String(),
    port: Nullable(Type.Integer({ description: 'null while the listener is off (protocols.<name>.port not set)' })),
    transport: Type.String({ description: 'tcp, or tcp/udp' }),
    identifier: Type.String({ description: "the terminal's own identifier, as the terminal sends it" }),
    setup: Type.String({ description: 'what the technician enters on the terminal' }),
    secret: Type.String({ description: 'what the secret above is for with this protocol' }),
  }, { description: 'for terminals that speak their own protocol (docs/protocols.md) instead of MQTT' })),
  mqtt: Type.Optional(Type.Object({
    host: Type.String(),
    port: Type.Integer(),
    tlsPort: Type.Optional(Type.Integer()),
    clientId: Type.String(),
    username: Type.String(),
    keepaliveS: Type.Integer(),
    topics: Type.Object({
      events: Type.String(), telemetry: Type.String(), status: Type.String(), commands: Type.String(), commandAck: Type.String(),
    }),
  })),
});

/** What a technician sets on a terminal that speaks its own protocol (docs/protocols.md). */
function terminalSetup(kind: 'watch' | 'jt808' | 'dc09', host: string, port: number | undefined, serial: string) {
  const at = port === undefined ? `${host}:<port: the ${kind} listener is off, set protocols.${kind}.port>` : `${host}:${port}`;
  const p = port ?? '<port>';
  switch (kind) {
    case 'watch':
      return {
        transport: 'tcp',
        setup: `point the watch at ${at}: most watches take the SMS "pw,123456,ip,${host},${p}#" (the password and the form vary by vendor; see docs/protocols/watch.md); its id must read ${serial}`,
        secret: 'not used: the watch protocol has no password; only provisioned watch ids are heard (see docs/protocols.md, Security)',
      };
    case 'jt808':
      return {
        transport: 'tcp',
        setup: `set the terminal's server to ${at} and its terminal phone number to ${serial}; it registers (0x0100) and gets its authentication code from the gateway`,
        secret: 'not used: the JT/T 808 authentication code is issued to the terminal when it registers',
      };
    case 'dc09':
      return {
        transport: 'tcp/udp',
        setup: `set the panel's receiver to ${at} (TCP or UDP), account ${serial}, DC-09 with ADM-CID or SIA-DCS; an encryption key for the account goes in the gateway's DC-09 key file (docs/protocols/dc09.md)`,
        secret: 'not used by DC-09; encryption keys are configured per account on the gateway',
      };
  }
}

const CommandBody = Type.Object({
  id: Type.String(), deviceId: Type.String(), type: Type.String(), params: Type.Object({}, { additionalProperties: true }),
  incidentId: Nullable(Type.String()), status: Type.String(), attempts: Type.Integer(), createdAt: Type.Integer(),
  sentAt: Nullable(Type.Integer()), ackedAt: Nullable(Type.Integer()), expiresAt: Type.Integer(), error: Nullable(Type.String()),
});

/** A command just stored: `queued` when the device is offline, with the reason a person can read. */
const CommandSent = Type.Composite([CommandBody, Type.Object({ queued: Type.Boolean(), reason: Type.Optional(Type.String()) })]);

/**
 * Lists filtered by live state read the whole fleet (its ids here, its supervision from the writer thread): so many
 * at once would fill the writer's port ahead of an alarm and hold a copy of the fleet's ids each. They take turns:
 * this many at a time, FLEET_READS_WAITING more waiting, then 503.
 */
export const FLEET_READS_RUNNING = 2;
export const FLEET_READS_WAITING = 8;

export const deviceRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  const { registry, states, config, audit } = deps;
  const fleetReads = pLimit(FLEET_READS_RUNNING);
  const writers = requireRole(app, 'admin', 'technician');
  const readers = requireRole(app, 'admin', 'technician', 'operator', 'steward');

  /**
   * The list filtered by live state: the ids of the whole fleet (100,000 whole rows held this thread ~1 s), then only
   * the page's rows. Connected is this thread's to know; supervision is the writer's, asked a slice at a time and
   * answered with the matching ids only.
   */
  const liveFiltered = async (q: DeviceFilter & { online?: boolean; supervision?: Supervision; limit: number; offset: number; unitId?: string }, scope: UnitScope | null, user: AuthUser) => {
    const ids = await registry.listIds({ ...q, scope });
    const online = q.online === undefined ? ids : ids.filter((id) => states.isOnline(id) === q.online);
    const all = q.supervision === undefined ? online : await states.withSupervision(online, q.supervision);
    return { items: await pageOf(all.slice(q.offset, q.offset + q.limit), user, q.unitId), total: all.length };
  };

  // the live state is the writer thread's: asked for once per slice of a page
  const views = async (rows: DeviceRow[]) => {
    const live = await states.read(rows.map((d) => d.id));
    return rows.map((d) => ({ ...d, unitId: registry.entry(d.id)?.unitId ?? null, live: live.get(d.id) ?? blankState() }));
  };
  const view = async (d: DeviceRow) => (await views([d]))[0]!;
  /** a page's devices with their state, a slice at a time (core/page-slices.ts) */
  const pageOf = (ids: string[], user: AuthUser, unitId: string | undefined) => inPageSlices(ids, (slice) => {
    // The scope was applied when the ids were read; a device moved out of it since (its resident moved or rebound,
    // a few ms ago at most) is left out here rather than shown with what it is now
    const rows = registry.rowsOf(slice);
    const visible = !user.unitId && unitId === undefined ? rows : rows.filter((d) => {
      const unit = registry.entry(d.id)?.unitId ?? null;
      return deps.scope.canSee(user, unit) && (unitId === undefined || unit === unitId);
    });
    return views(visible);
  });

  const credentials = (d: DeviceRow, secret: string) => ({
    id: d.id,
    kind: d.kind,
    serial: d.serial,
    secret,
    ...(d.kind === 'watch' || d.kind === 'jt808' || d.kind === 'dc09'
      ? { terminal: { protocol: d.kind, host: config.publicHost, port: deps.protocolPorts?.[d.kind] ?? null, identifier: d.serial, ...terminalSetup(d.kind, config.publicHost, deps.protocolPorts?.[d.kind], d.serial) } }
      : {}),
    mqtt: {
      host: config.publicHost,
      port: deps.mqttPorts.port,
      ...(deps.mqttPorts.tlsPort ? { tlsPort: deps.mqttPorts.tlsPort } : {}),
      clientId: d.id,
      username: d.id,
      keepaliveS: KINDS[d.kind].keepaliveS,
      topics: {
        events: topics.events(d.id), telemetry: topics.telemetry(d.id), status: topics.status(d.id),
        commands: topics.commands(d.id), commandAck: topics.commandAck(d.id),
      },
    },
  });

  /**
   * A user bound to a unit may only touch devices of residents in their units: every single-device route checks it
   * (a technician of one grid must not get another grid's device secret, nor suspend it). `unbound`: a device bound
   * to no resident yet may be bound by such a user (commissioning), to a resident of their units.
   */
  const checkVisible = (user: AuthUser, deviceId: string, opts: { unbound?: boolean } = {}) => {
    if (!user.unitId) return;
    const e = registry.entry(deviceId);
    if (opts.unbound && e && e.residentId === null) return;
    // the same rule as for incidents: whoever may see the device's alarms may see the device
    if (!e || !deps.scope.canSee(user, e.unitId)) throw new ForbiddenError(`device ${deviceId} is outside your units`);
  };

  app.post('/api/devices', {
    schema: {
      tags: ['devices'],
      summary: 'Provision a device: its id and secret are returned once',
      body: Type.Object({
        kind: Kind,
        serial: Type.String({ minLength: 3, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$' }),
        model: Type.Optional(Type.String({ maxLength: 64 })),
        firmware: Type.Optional(Type.String({ maxLength: 64 })),
        power: Type.Optional(Type.Union([Type.Literal('battery'), Type.Literal('mains')])),
        test: Type.Optional(Type.Boolean({ description: "a test run's device (firmware-sim): its incidents are test incidents; set only here" })),
      }, { additionalProperties: false }),
      response: { 201: Credentials, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody },
    },
    onRequest: writers,
  }, async (req, reply) => {
    await deps.store.whenFree();
    const { device, secret } = registry.provision(req.body);
    req.log.info({ deviceId: device.id, kind: device.kind, serial: device.serial, by: req.user.username }, 'device provisioned');
    await audit.append({ actor: auditActor(req), action: 'device.provision', target: { type: 'device', id: device.id }, details: { kind: device.kind, serial: device.serial, ...(device.test ? { test: true } : {}) } }, req.log);
    reply.status(201).header('cache-control', 'no-store');
    return credentials(device, secret);
  });

  // A factory delivery: CSV in, credentials out as CSV, once. Up to 50,000 lines (IMPORT_MAX_BYTES of body, 413
  // above); parsed, checked, hashed and written in slices of a few ms (devices/import.ts, DeviceRegistry.importDevices)
  // so that no alarm waits for it; all or nothing, every bad line named.
  app.addContentTypeParser('text/csv', { parseAs: 'string', bodyLimit: IMPORT_MAX_BYTES }, (_req, body, done) => done(null, body));
  app.post('/api/devices/import', {
    schema: {
      tags: ['devices'],
      summary: 'Bulk import a CSV of serials (header serial,kind[,model,firmware,power]; ≤ 50,000 lines, ≤ 16 MiB); answers CSV id,serial,kind,secret',
      querystring: Type.Object({ kind: Type.Optional(Kind), test: Type.Optional(Type.Boolean({ description: "a test run's devices (firmware-sim)" })) }),
      response: { 201: Type.String({ description: 'CSV id,serial,kind,secret' }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody, 413: ErrorBody },
    },
    onRequest: writers,
  }, async (req, reply) => {
    if (typeof req.body !== 'string') throw new ValidationError('send the CSV with Content-Type: text/csv');
    const rows = await parseDeviceCsv(req.body, req.query.kind as DeviceKind | undefined);
    const { importId, created, writeMs, longestSliceMs } = await registry.importDevices(rows, req.user.username, { test: req.query.test === true });
    req.log.info({ importId, count: created.length, by: req.user.username, writeMs: Math.round(writeMs), longestSliceMs: Math.round(longestSliceMs) }, 'devices imported');
    await audit.append({ actor: auditActor(req), action: 'device.import', target: { type: 'import', id: importId }, details: { count: created.length, first: created[0]?.device.id, last: created.at(-1)?.device.id, ...(req.query.test ? { test: true } : {}) } }, req.log);
    reply.status(201).header('content-type', 'text/csv; charset=utf-8').header('cache-control', 'no-store');
    // streamed in pieces: 50,000 lines of answer do not hold the loop either
    // (a stream: Fastify skips the 201 string schema's serializer for it)
    return reply.send(Readable.from(csvPieces(['id', 'serial', 'kind', 'secret'], created.map(({ device, secret }) => [device.id, device.serial, device.kind, secret]))) as unknown as string);
  });

  app.get('/api/devices', {
    schema: {
      tags: ['devices'], summary: 'List devices, filtered by kind, state, resident, unit, supervision, online or search text, a page at a time',
      querystring: Type.Object({
        kind: Type.Optional(Kind),
        state: Type.Optional(Type.Union(DEVICE_STATES.map((s) => Type.Literal(s)))),
        residentId: Type.Optional(Type.String()),
        unitId: Type.Optional(Type.String()),
        supervision: Type.Optional(Type.Union(SUPERVISION_STATES.map((s) => Type.Literal(s)))),
        online: Type.Optional(Type.Boolean()),
        q: Type.Optional(Type.String({ maxLength: 64 })),
        ...Paging,
      }),
      response: { 200: Type.Object({ items: Type.Array(DeviceBody), total: Type.Integer() }), 400: ErrorBody, 401: ErrorBody, 503: ErrorBody },
    },
    onRequest: readers,
  }, async (req) => {
    const q = req.query;
    if (q.unitId !== undefined) deps.scope.requireUnit('unitId', q.unitId);
    let scope = deps.scope.of(req.user);
    if (q.unitId !== undefined) scope = { unitIds: scope ? scope.unitIds.filter((u) => u === q.unitId) : [q.unitId], unplaced: false };
    // live-state filters are applied over the registry page (the live state is in memory)
    if (q.supervision !== undefined || q.online !== undefined) {
      // these take turns of their own, below: the API's turn (server/plugins/api-admission.ts) goes to the next read
      await app.leaveTurn(req);
      if (fleetReads.pendingCount >= FLEET_READS_WAITING) {
        throw new EldergateError('BUSY', `${fleetReads.activeCount + fleetReads.pendingCount} device lists filtered by connection or supervision are being read or waiting: try again in a few seconds`, { status: 503 });
      }
      return fleetReads(() => liveFiltered(q, scope, req.user));
    }
    const { ids, total } = registry.pageIds({ ...q, scope });
    return { items: await pageOf(ids, req.user, q.unitId), total };
  });

  app.get('/api/devices/:id', {
    schema: { tags: ['devices'], summary: 'One device with its state and binding', params: IdParam, response: { 200: DeviceBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody } },
    onRequest: readers,
  }, async (req) => {
    const d = registry.get(req.params.id);
    checkVisible(req.user, d.id);
    return await view(d);
  });

  app.patch('/api/devices/:id', {
    schema: {
      tags: ['devices'], summary: "Change a device's model, firmware, notes or power source; admins: its account, or clear its test mark",
      params: IdParam,
      body: Type.Object({
        model: Type.Optional(Type.String({ maxLength: 64 })),
        firmware: Type.Optional(Type.String({ maxLength: 64 })),
        notes: Type.Optional(Type.String({ maxLength: 2000 })),
        power: Type.Optional(Type.Union([Type.Literal('battery'), Type.Literal('mains')])),
        config: Type.Optional(Type.Object({}, { additionalProperties: true })),
        account: Type.Optional(Nullable(Type.String({ minLength: 1, maxLength: 64, pattern: '^[A-Za-z0-9][A-Za-z0-9._:-]*$', description: 'account identifier (admins only); null takes it away' }))),
        accountScheme: Type.Optional(Type.Union(ACCOUNT_SCHEMES.map((a) => Type.Literal(a)), { description: 'default contact-id' })),
        test: Type.Optional(Type.Literal(false, { description: "admins only: a test run's device becomes a real one (its incidents are real from now on); it cannot be set back" })),
      }, { additionalProperties: false }),
      response: { 200: DeviceBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
    },
    onRequest: writers,
  }, async (req) => {
    // every check and write below in one turn, once the write lock is free (core/db.ts whenFree)
    await deps.store.whenFree();
    checkVisible(req.user, req.params.id);
    const { account, accountScheme, ...patch } = req.body;
    // config.account was how an account used to be set: it is the same admin action now, never plain configuration
    let wanted: DeviceAccount | null | undefined = account === undefined ? undefined : account === null ? null : { scheme: accountScheme ?? 'contact-id', id: account };
    if (patch.config && 'account' in patch.config) {
      const { account: legacy, ...rest } = patch.config;
      if (wanted === undefined) wanted = legacy === null ? null : { scheme: 'contact-id', id: String(legacy) };
      patch.config = rest;
    }
    if (patch.test === false && req.user.role !== 'admin') {
      throw new ForbiddenError("clearing a device's test mark is an admin action (from then on its alarms are real incidents, escalated): ask an admin");
    }
    if (wanted !== undefined) {
      if (req.user.role !== 'admin') {
        throw new ForbiddenError("changing a device's account identifier is an admin action (it decides whose alarms arrive on the device): ask an admin");
      }
      if (wanted && !/^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/.test(wanted.id)) {
        throw new ValidationError('account: 1–64 letters, digits or . _ : - (a Contact ID account is 4–6 hex digits)', { field: 'account' });
      }
    }
    const before = registry.get(req.params.id);
    let d = before;
    const entries: AuditInput[] = [];
    try {
      if (wanted !== undefined) {
        const r = registry.setAccount(req.params.id, wanted);
        d = r.device;
        entries.push({ actor: auditActor(req), action: 'device.account', target: { type: 'device', id: d.id }, details: { before: r.before, after: wanted } });
      }
      if (Object.keys(patch).length) {
        d = registry.update(req.params.id, patch);
        const changed = Object.fromEntries(Object.keys(patch).map((k) => [k, { before: (before as Record<string, unknown>)[k] ?? null, after: (d as Record<string, unknown>)[k] ?? null }]));
        entries.push({ actor: auditActor(req), action: 'device.update', target: { type: 'device', id: d.id }, details: changed });
      }
    } finally {
      // what was done is audited, even when a later part was refused
      for (const e of entries) await audit.append(e, req.log);
    }
    return await view(d);
  });

  app.post('/api/devices/:id/bind', {
    schema: {
      tags: ['devices'],
      summary: 'Bind the device to a resident (null unbinds)',
      description: 'From then on the device\'s alarms are the new resident\'s: they open her own incidents and join none of the '
        + 'previous resident\'s still open, which stay his until a person closes them. The rules forget what they knew of '
        + 'the device (the side of the previous safe zone it was last on, for instance).',
      params: IdParam,
      body: Type.Object({ residentId: Nullable(Type.String({ minLength: 1 })) }, { additionalProperties: false }),
      response: { 200: DeviceBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
    },
    onRequest: writers,
  }, async (req) => {
    await deps.store.whenFree();
    checkVisible(req.user, req.params.id, { unbound: true });
    if (req.user.unitId && req.body.residentId !== null) {
      const unitId = registry.getResident(req.body.residentId).unitId;
      if (!deps.scope.canSee(req.user, unitId)) throw new ForbiddenError(`resident ${req.body.residentId} is outside your units`);
    }
    const prior = registry.get(req.params.id).residentId;
    const d = registry.bind(req.params.id, req.body.residentId);
    req.log.info({ deviceId: d.id, residentId: d.residentId, by: req.user.username }, 'device bound');
    await audit.append({ actor: auditActor(req), action: d.residentId ? 'device.bind' : 'device.unbind', target: { type: 'device', id: d.id }, details: { before: prior, after: d.residentId } }, req.log);
    return await view(d);
  });

  app.post('/api/devices/:id/rotate-secret', {
    schema: {
      tags: ['devices'],
      summary: 'New secret, shown once; the device is disconnected at once',
      params: IdParam,
      response: { 200: Credentials, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
    },
    onRequest: writers,
  }, async (req, reply) => {
    await deps.store.whenFree();
    checkVisible(req.user, req.params.id);
    const { device, secret } = registry.rotateSecret(req.params.id);
    req.log.info({ deviceId: device.id, by: req.user.username }, 'device secret rotated');
    await audit.append({ actor: auditActor(req), action: 'device.rotate-secret', target: { type: 'device', id: device.id } }, req.log);
    reply.header('cache-control', 'no-store');
    return credentials(device, secret);
  });

  for (const [action, state] of [['suspend', 'suspended'], ['resume', 'in-service'], ['decommission', 'decommissioned']] as const) {
    app.post(`/api/devices/:id/${action}`, {
      schema: { tags: ['devices'], summary: `${action[0]!.toUpperCase()}${action.slice(1)} the device`, params: IdParam, response: { 200: DeviceBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody } },
      onRequest: writers,
    }, async (req) => {
      await deps.store.whenFree();
      checkVisible(req.user, req.params.id);
      const prior = registry.get(req.params.id);
      const d = registry.setState(req.params.id, state);
      req.log.info({ deviceId: d.id, state, by: req.user.username }, `device ${action}`);
      await audit.append({ actor: auditActor(req), action: `device.${action}`, target: { type: 'device', id: d.id }, details: {
        before: prior.state, after: d.state, ...(prior.account && !d.account ? { accountReleased: { scheme: prior.accountScheme, id: prior.account } } : {}),
      } }, req.log);
      return await view(d);
    });
  }

  app.post('/api/devices/:id/clear-flags', {
    schema: { tags: ['devices'], summary: 'A technician looked at the terminal: clear "sending unreadable messages"', params: IdParam, response: { 200: DeviceBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody } },
    onRequest: writers,
  }, async (req) => {
    const d = registry.get(req.params.id);
    checkVisible(req.user, d.id);
    states.clearFlags(d.id);
    await audit.append({ actor: auditActor(req), action: 'device.clear-flags', target: { type: 'device', id: d.id } }, req.log);
    return await view(d);
  });

  app.get('/api/devices/:id/rejects', {
    schema: {
      tags: ['devices'], summary: 'Unreadable messages kept for diagnosis', params: IdParam,
      response: { 200: Type.Object({ items: Type.Array(Type.Object({ id: Type.Integer(), topic: Nullable(Type.String()), reason: Type.String(), raw: Type.String(), at: Type.Integer() })) }), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
    },
    onRequest: writers,
  }, async (req) => {
    registry.get(req.params.id);
    checkVisible(req.user, req.params.id);
    const items = deps.pg
      ? (await deps.pg.query('select id, topic, reason, raw, at from rejects where device_id = $1 order by id desc limit 100', [req.params.id])).rows
        .map((r) => ({ ...r, id: Number(r.id), at: Number(r.at) }))
      : deps.store.sqlite.prepare('select id, topic, reason, raw, at from rejects where device_id = ? order by id desc limit 100').all(req.params.id);
    return { items: items as { id: number; topic: string | null; reason: string; raw: string; at: number }[] };
  });

  app.post('/api/devices/:id/commands', {
    schema: {
      tags: ['devices'],
      summary: 'Send a command to the device (QoS 1, stored and re-sent until acknowledged or expired)',
      params: IdParam,
      body: Type.Object({
        type: Type.Union(DEVICE_COMMAND_TYPES.map((t) => Type.Literal(t)), { description: 'call-back {number}, set-contacts {sos, family}, send-text {text}: watch and JT/T 808 terminals' }),
        params: Type.Optional(Type.Object({}, { additionalProperties: true })),
        ttlS: Type.Optional(Type.Integer({ minimum: 1, maximum: 7 * 86400 })),
      }, { additionalProperties: false }),
      response: { 202: CommandSent, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 503: ErrorBody },
    },
    onRequest: requireRole(app, 'admin', 'technician', 'operator'),
  }, async (req, reply) => {
    const d = registry.get(req.params.id);
    checkVisible(req.user, d.id);
    const cmd = await deps.commands.create(d.id, req.body.type, req.body.params ?? {}, req.body.ttlS ? { ttlMs: req.body.ttlS * 1000 } : {});
    const sent = await deps.commands.send(cmd.id);
    await audit.append({ actor: auditActor(req), action: 'device.command', target: { type: 'device', id: d.id }, details: { command: cmd.type, commandId: cmd.id, params: cmd.params } }, req.log);
    reply.status(202);
    if (sent) return { ...cmd, queued: false };
    return { ...cmd, queued: true, reason: `device offline; sent when it reconnects (expires at ${new Date(cmd.expiresAt).toISOString()})` };
  });

  app.get('/api/devices/:id/commands', {
    schema: { tags: ['devices'], summary: 'The commands sent to a device and their outcome', params: IdParam, response: { 200: Type.Object({ items: Type.Array(CommandBody) }), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody } },
    onRequest: readers,
  }, async (req) => {
    registry.get(req.params.id);
    checkVisible(req.user, req.params.id);
    return { items: await deps.commands.list(req.params.id) };
  });

  app.get('/api/device-kinds', {
    schema: { tags: ['devices'], summary: 'The device kinds and their supervision intervals' },
    onRequest: readers,
  }, async () => Object.values(KINDS).map((k) => ({
    kind: k.kind, title: k.title, heartbeatMs: k.heartbeatMs, mainsHeartbeatMs: k.mainsHeartbeatMs, keepaliveS: k.keepaliveS,
    lifeSafetySensor: k.lifeSafetySensor, cancelWindowMs: k.cancelWindowMs ?? null,
    events: Object.keys(k.events), telemetry: Object.keys(k.telemetry),
  })));
};
