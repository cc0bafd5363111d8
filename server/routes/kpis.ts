// Answer-time KPIs per shift over HTTP. A scoped user gets the KPIs of their own units.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import { PRIORITIES, type Priority } from '../../core/contracts.js';
import { DEFAULT_SHIFTS, type KpiQuery, type KpiReport } from '../../response/kpis.js';
import type { Network } from '../../response/network.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { ErrorBody } from './common.js';
import { parseTime, splitList } from './incidents.js';

const Share = Type.Object({ count: Type.Integer(), eligible: Type.Integer(), share: Type.Union([Type.Number(), Type.Null()]) });
const Dist = Type.Object({
  n: Type.Integer(),
  medianMs: Type.Union([Type.Number(), Type.Null()]),
  p95Ms: Type.Union([Type.Number(), Type.Null()]),
});
const Block = {
  incidents: Type.Integer(),
  acknowledged: Type.Integer(),
  ackWithin60s: Share,
  ackWithin180s: Share,
  timeToAck: Dist,
  timeToOnSite: Dist,
  onSiteWithinReach: Share,
  breaches: Type.Integer(),
};
const Report = Type.Object({
  from: Type.Integer(),
  to: Type.Integer(),
  shifts: Type.Array(Type.Object({ start: Type.Integer(), end: Type.Integer(), label: Type.String(), ...Block })),
  total: Type.Object(Block),
});

export function kpiRoutes(r: {
  network: Network;
  kpis(q: KpiQuery): KpiReport | Promise<KpiReport>;
  /** local shift start times, default 08:00 and 20:00 */
  shifts?: readonly string[];
}): FastifyPluginAsyncTypebox<{ deps: AppDeps }> {
  return async (app) => {
    const readers = requireRole(app, 'admin', 'operator', 'steward');
    app.get('/api/kpis', {
      schema: {
        tags: ['incidents'],
        summary: 'answer-time KPIs per shift',
        querystring: Type.Object({
          from: Type.Optional(Type.String({ maxLength: 40, description: 'epoch ms or ISO 8601; default: 24 h before `to`' })),
          to: Type.Optional(Type.String({ maxLength: 40, description: 'epoch ms or ISO 8601; default: now' })),
          priority: Type.Optional(Type.Array(Type.String({ maxLength: 20 }), { maxItems: 3 })),
          shifts: Type.Optional(Type.String({ maxLength: 200, description: 'shift start times, e.g. 07:00,15:00,23:00' })),
        }),
        response: { 200: Report, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
      },
      onRequest: readers,
    }, async (req) => {
      const to = parseTime(req.query.to, 'to') ?? Date.now();
      const from = parseTime(req.query.from, 'from') ?? to - 86_400_000;
      const priority = splitList<Priority>(req.query.priority, PRIORITIES, 'priority');
      const scope = req.user.unitId ? r.network.scopeOf(req.user.unitId) : null;
      return r.kpis({
        from,
        to,
        shifts: req.query.shifts ? req.query.shifts.split(',').map((s) => s.trim()) : (r.shifts ?? DEFAULT_SHIFTS),
        ...(priority ? { priority } : {}),
        ...(scope ? { unitIds: scope.unitIds, includeUnplaced: scope.unplaced } : {}),
      });
    });
  };
}
