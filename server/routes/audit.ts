// The audit log over HTTP: admins only, read only (the log is append-only; there is no route that changes it).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type } from '@sinclair/typebox';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { AuditEntryBody, ErrorBody, Paging } from './common.js';
import { parseTime } from './incidents.js';


export const auditRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/api/audit', {
    schema: {
      tags: ['audit'],
      summary: 'Who did what, when, from where (newest first). Filters: actor (username or user id), action (exact, or a prefix ending in "." such as "device."), target (an id, or type:id such as incident:inc_…), from/to (epoch ms or ISO 8601)',
      querystring: Type.Object({
        actor: Type.Optional(Type.String({ maxLength: 64 })),
        action: Type.Optional(Type.String({ maxLength: 64 })),
        target: Type.Optional(Type.String({ maxLength: 140 })),
        from: Type.Optional(Type.String({ maxLength: 40 })),
        to: Type.Optional(Type.String({ maxLength: 40 })),
        ...Paging,
      }),
      response: { 200: Type.Object({ items: Type.Array(AuditEntryBody), total: Type.Integer() }), 400: ErrorBody, 401: ErrorBody, 403: ErrorBody },
    },
    onRequest: requireRole(app, 'admin'),
  }, async (req) => {
    const q = req.query;
    const from = parseTime(q.from, 'from');
    const to = parseTime(q.to, 'to');
    return deps.audit.query({
      ...(q.actor ? { actor: q.actor } : {}),
      ...(q.action ? { action: q.action } : {}),
      ...(q.target ? { target: q.target } : {}),
      ...(from !== undefined ? { from } : {}),
      ...(to !== undefined ? { to } : {}),
      limit: q.limit,
      offset: q.offset,
    });
  });
};
