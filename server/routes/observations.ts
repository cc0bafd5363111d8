import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { ForbiddenError } from '../../core/errors.js';
import type { AppDeps } from '../deps.js';
import { numbered } from '../../core/pg-bind.js';
import { requireRole } from '../plugins/auth.js';
import { ErrorBody, SafeInteger } from './common.js';
import { MAX_PAGE_ROWS } from '../../core/limits.js';

const ObservationBody = Type.Object({
  id: Type.Integer(),
  deviceId: Type.String(),
  type: Type.String(),
  seq: Type.Union([Type.Integer(), Type.Null()]),
  deviceTs: Type.Union([Type.Integer(), Type.Null()]),
  receivedAt: Type.Integer(),
  source: Type.String(),
  lifeSafety: Type.Boolean(),
  data: Type.Object({}, { additionalProperties: true }),
  flags: Type.Union([Type.Array(Type.String()), Type.Null()]),
});

/**
 * A device's newest rows, optionally of one type and before an id. Its rows are indexed per class (devices/schema.ts):
 * the newest of its technical rows come from their (device, id) index, the newest of its alarms from the alarms' key
 * index, and the two are merged. The class is written out, not a parameter: both engines use a partial index only when
 * the query states its condition. Parameters: (device, [type], [before], limit) twice, then the limit. A test pins the
 * SQLite plan.
 */
const DIALECT = {
  sqlite: { cols: '*', other: 'life_safety = 0', alarm: 'life_safety = 1' },
  pg: {
    cols: 'id, device_id, type, seq, device_ts, received_at, source, life_safety, data::text as data, flags::text as flags',
    other: 'not life_safety',
    alarm: 'life_safety',
  },
} as const;

export function deviceRowsSql(engine: 'sqlite' | 'pg', filter: { type: boolean; before: boolean }): string {
  const d = DIALECT[engine];
  const where = `device_id = ? ${filter.type ? 'and type = ?' : ''} ${filter.before ? 'and id < ?' : ''}`;
  const newest = (cls: string, alias: string) =>
    `select * from (select ${d.cols} from observations where ${where} and ${cls} order by id desc limit ?) ${alias}`;
  const sql = `${newest(d.other, 'other')} union all ${newest(d.alarm, 'alarm')} order by id desc limit ?`;
  return engine === 'pg' ? numbered(sql) : sql;
}

export const observationRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/api/observations', {
    schema: {
      tags: ['observations'],
      summary: 'What arrived from a device, newest first',
      querystring: Type.Object({
        deviceId: Type.String({ minLength: 1, description: 'required: observations are listed per device' }),
        type: Type.Optional(Type.String()),
        before: Type.Optional(SafeInteger({ minimum: 1, description: 'observation id to page back from' })),
        limit: Type.Integer({ minimum: 1, maximum: MAX_PAGE_ROWS, default: 100 }),
      }),
      response: { 200: Type.Object({ items: Type.Array(ObservationBody) }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
    },
    onRequest: requireRole(app, 'admin', 'technician', 'operator', 'steward'),
  }, async (req) => {
    const { deviceId, type, before, limit } = req.query;
    deps.registry.get(deviceId);
    if (!deps.scope.canSee(req.user, deps.registry.entry(deviceId)?.unitId)) throw new ForbiddenError(`device ${deviceId} is outside your units`);
    const filter = { type: type !== undefined, before: before !== undefined };
    const one = [deviceId, ...(type ? [type] : []), ...(before ? [before] : []), limit];
    const args = [...one, ...one, limit];
    // the writer's store: this node's file, or PostgreSQL (cluster mode's shared store; its JSON comes parsed)
    const rows = deps.pg
      ? (await deps.pg.query(deviceRowsSql('pg', filter), args)).rows as Record<string, unknown>[]
      : deps.store.sqlite.prepare(deviceRowsSql('sqlite', filter)).all(...args) as Record<string, unknown>[];
    return {
      items: rows.map((r) => ({
        id: Number(r.id),
        deviceId: r.device_id as string,
        type: r.type as string,
        seq: r.seq === null ? null : Number(r.seq),
        deviceTs: r.device_ts === null ? null : Number(r.device_ts),
        receivedAt: Number(r.received_at),
        source: r.source as string,
        lifeSafety: Boolean(r.life_safety),
        data: JSON.parse(r.data as string),
        flags: r.flags ? JSON.parse(r.flags as string) : null,
      })),
    };
  });
};
