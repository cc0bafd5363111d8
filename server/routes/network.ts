// The response network over HTTP: units (district → street → community → grid) and their staff. Admins manage;
// everyone reads what their unit lets them see; the on-duty flag may also be set by operators and stewards for
// staff they can see (a chief steward starts the nurses' shift).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { Type, type TSchema } from '@sinclair/typebox';
import { NotFoundError } from '../../core/errors.js';
import { auditActor } from '../../core/audit.js';
import type { AuthUser } from '../../core/users.js';
import { STAFF_ROLES, UNIT_TIERS } from '../../response/schema.js';
import type { Network, Staff, Unit } from '../../response/network.js';
import { UNIT_ID_PATTERN } from '../../response/ids.js';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';
import { requireChannel } from '../../response/notifiers/channels.js';
import { ErrorBody, IdParam } from './common.js';

const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()]);
const Tier = Type.Union(UNIT_TIERS.map((t) => Type.Literal(t)));
const StaffRole = Type.Union(STAFF_ROLES.map((r) => Type.Literal(r)));

export const UnitBody = Type.Object({
  id: Type.String(),
  name: Type.String(),
  tier: Tier,
  parentId: Nullable(Type.String()),
  phone: Nullable(Type.String()),
  webhook: Nullable(Type.String()),
  createdAt: Type.Integer(),
});

const UnitDetail = Type.Object({
  ...UnitBody.properties,
  ancestors: Type.Array(Type.String(), { description: 'parent first, up to the district' }),
  children: Type.Array(Type.String()),
});

export const StaffBody = Type.Object({
  id: Type.String(),
  name: Type.String(),
  role: StaffRole,
  unitId: Type.String(),
  phone: Nullable(Type.String()),
  userId: Nullable(Type.String()),
  onDuty: Type.Boolean(),
  createdAt: Type.Integer(),
});

const UnitFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  tier: Tier,
  parentId: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  phone: Type.Optional(Nullable(Type.String({ maxLength: 30 }))),
  webhook: Type.Optional(Nullable(Type.String({ maxLength: 500, description: 'name of a configured notification channel told of incidents and escalations (not a URL)' }))),
};

const StaffFields = {
  name: Type.String({ minLength: 1, maxLength: 200 }),
  role: StaffRole,
  unitId: Type.String({ minLength: 1, maxLength: 64 }),
  phone: Type.Optional(Nullable(Type.String({ maxLength: 30 }))),
  userId: Type.Optional(Nullable(Type.String({ maxLength: 64 }))),
  onDuty: Type.Optional(Type.Boolean()),
};

export function networkRoutes(r: { network: Network }): FastifyPluginAsyncTypebox<{ deps: AppDeps }> {
  return async (app, { deps }) => {
    const { network } = r;
    const admin = requireRole(app, 'admin');
    const readers = requireRole(app, 'admin', 'operator', 'steward', 'technician');
    const dutyTogglers = requireRole(app, 'admin', 'operator', 'steward');

    const seesUnit = (user: AuthUser, unitId: string): Unit => {
      const u = network.getUnit(unitId);
      if (!u || (user.unitId && !network.subtree(user.unitId).has(unitId))) throw new NotFoundError('unit', unitId);
      return u;
    };
    const seesStaff = (user: AuthUser, id: string): Staff => {
      const s = network.getStaff(id);
      if (!s || (user.unitId && !network.subtree(user.unitId).has(s.unitId))) throw new NotFoundError('staff member', id);
      return s;
    };
    /** the fields a patch changed, before and after: what an investigator needs, not the whole record twice */
    const diff = <T extends object>(before: T, after: T, keys: string[]) => {
      const changed = keys.filter((k) => before[k as keyof T] !== after[k as keyof T]);
      const pick = (x: T) => Object.fromEntries(changed.map((k) => [k, x[k as keyof T]]));
      return { changed, before: pick(before), after: pick(after) };
    };
    const detail = (u: Unit) => ({
      ...u,
      ancestors: network.ancestors(u.id).map((a) => a.id),
      children: network.listUnits(u.id).filter((c) => c.parentId === u.id).map((c) => c.id),
    });

    app.get('/api/units', {
      schema: {
        tags: ['network'], summary: "List the response network's units (district, street, community, grid)",
        querystring: Type.Object({ tier: Type.Optional(Tier), parentId: Type.Optional(Type.String({ maxLength: 64 })) }),
        response: { 200: Type.Object({ items: Type.Array(UnitBody) }), 401: ErrorBody },
      },
      onRequest: readers,
    }, async (req) => {
      let items = network.listUnits(req.user.unitId);
      if (req.query.tier) items = items.filter((u) => u.tier === req.query.tier);
      if (req.query.parentId) items = items.filter((u) => u.parentId === req.query.parentId);
      return { items };
    });

    app.get('/api/units/:id', {
      schema: { tags: ['network'], summary: 'One unit with its ancestors and children', params: IdParam, response: { 200: UnitDetail, 401: ErrorBody, 404: ErrorBody } },
      onRequest: readers,
    }, async (req) => detail(seesUnit(req.user, req.params.id)));

    app.post('/api/units', {
      schema: {
        tags: ['network'], summary: 'Create a unit under its parent',
        body: Type.Object({ id: Type.Optional(Type.String({ pattern: UNIT_ID_PATTERN })), ...UnitFields }, { additionalProperties: false }),
        response: { 201: UnitDetail, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody },
      },
      onRequest: admin,
    }, async (req, reply) => {
      requireChannel(deps.config, 'webhook', req.body.webhook);
      await deps.store.whenFree();
      const u = network.createUnit(req.body);
      await deps.audit.append({ actor: auditActor(req), action: 'unit.create', target: { type: 'unit', id: u.id }, details: { name: u.name, tier: u.tier, parentId: u.parentId, webhook: u.webhook } }, req.log);
      reply.status(201);
      return detail(u);
    });

    app.patch('/api/units/:id', {
      schema: {
        tags: ['network'], summary: "Change a unit's name, tier or parent",
        params: IdParam,
        body: Type.Partial(Type.Object(UnitFields), { additionalProperties: false }),
        response: { 200: UnitDetail, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest: admin,
    }, async (req) => {
      requireChannel(deps.config, 'webhook', req.body.webhook);
      await deps.store.whenFree();
      const before = network.requireUnit(req.params.id);
      const after = network.updateUnit(req.params.id, req.body);
      const d = diff(before, after, Object.keys(req.body));
      if (d.changed.length) await deps.audit.append({ actor: auditActor(req), action: 'unit.update', target: { type: 'unit', id: after.id }, details: { name: after.name, before: d.before, after: d.after } }, req.log);
      return detail(after);
    });

    app.delete('/api/units/:id', {
      schema: {
        tags: ['network'], summary: 'Delete a unit (refused, 409, while anything depends on it)',
        params: IdParam,
        response: { 204: Type.Null(), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody, 409: ErrorBody },
      },
      onRequest: admin,
    }, async (req, reply) => {
      await deps.store.whenFree();
      const gone = network.requireUnit(req.params.id);
      network.deleteUnit(req.params.id);
      await deps.audit.append({ actor: auditActor(req), action: 'unit.delete', target: { type: 'unit', id: gone.id }, details: { name: gone.name, tier: gone.tier, parentId: gone.parentId } }, req.log);
      reply.status(204);
      return null;
    });

    app.get('/api/staff', {
      schema: {
        tags: ['network'], summary: 'List staff, by unit or on duty',
        querystring: Type.Object({ unitId: Type.Optional(Type.String({ maxLength: 64 })), onDuty: Type.Optional(Type.Boolean()) }),
        response: { 200: Type.Object({ items: Type.Array(StaffBody) }), 401: ErrorBody },
      },
      onRequest: readers,
    }, async (req) => ({
      items: network.listStaff({
        ...(req.query.unitId ? { unitId: req.query.unitId } : {}),
        ...(req.query.onDuty !== undefined ? { onDuty: req.query.onDuty } : {}),
        scope: req.user.unitId,
      }),
    }));

    app.get('/api/staff/:id', {
      schema: { tags: ['network'], summary: 'One staff member', params: IdParam, response: { 200: StaffBody, 401: ErrorBody, 404: ErrorBody } },
      onRequest: readers,
    }, async (req) => seesStaff(req.user, req.params.id));

    app.post('/api/staff', {
      schema: {
        tags: ['network'], summary: 'Add a staff member to a unit',
        body: Type.Object({ id: Type.Optional(Type.String({ pattern: UNIT_ID_PATTERN })), ...StaffFields }, { additionalProperties: false }),
        response: { 201: StaffBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 409: ErrorBody },
      },
      onRequest: admin,
    }, async (req, reply) => {
      await deps.store.whenFree();
      const s = network.createStaff(req.body);
      await deps.audit.append({ actor: auditActor(req), action: 'staff.create', target: { type: 'staff', id: s.id }, details: { name: s.name, role: s.role, unitId: s.unitId, onDuty: s.onDuty } }, req.log);
      reply.status(201);
      return s;
    });

    app.patch('/api/staff/:id', {
      schema: {
        tags: ['network'], summary: "Change a staff member's details or unit",
        params: IdParam,
        body: Type.Partial(Type.Object(StaffFields), { additionalProperties: false }),
        response: { 200: StaffBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest: admin,
    }, async (req) => {
      await deps.store.whenFree();
      const before = network.requireStaff(req.params.id);
      const after = network.updateStaff(req.params.id, req.body);
      const d = diff(before, after, Object.keys(req.body));
      if (d.changed.length) await deps.audit.append({ actor: auditActor(req), action: 'staff.update', target: { type: 'staff', id: after.id }, details: { name: after.name, before: d.before, after: d.after } }, req.log);
      return after;
    });

    app.delete('/api/staff/:id', {
      schema: {
        tags: ['network'], summary: 'Remove a staff member',
        params: IdParam,
        response: { 204: Type.Null(), 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest: admin,
    }, async (req, reply) => {
      await deps.store.whenFree();
      const gone = network.requireStaff(req.params.id);
      network.deleteStaff(req.params.id);
      await deps.audit.append({ actor: auditActor(req), action: 'staff.delete', target: { type: 'staff', id: gone.id }, details: { name: gone.name, role: gone.role, unitId: gone.unitId } }, req.log);
      reply.status(204);
      return null;
    });

    app.post('/api/staff/:id/on-duty', {
      schema: {
        tags: ['network'], summary: 'Put a staff member on or off duty',
        params: IdParam,
        body: Type.Object({ onDuty: Type.Boolean() }, { additionalProperties: false }),
        response: { 200: StaffBody, 400: ErrorBody, 401: ErrorBody, 403: ErrorBody, 404: ErrorBody },
      },
      onRequest: dutyTogglers,
    }, async (req) => {
      await deps.store.whenFree();
      const before = seesStaff(req.user, req.params.id);
      const after = network.setOnDuty(req.params.id, req.body.onDuty);
      // who started or ended a shift is what a supervisor asks after a missed alarm; a repeat of the same state is no change
      if (before.onDuty !== after.onDuty) {
        await deps.audit.append({ actor: auditActor(req), action: after.onDuty ? 'staff.on-duty' : 'staff.off-duty', target: { type: 'staff', id: after.id }, details: { name: after.name, unitId: after.unitId } }, req.log);
      }
      return after;
    });
  };
}
