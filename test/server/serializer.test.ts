// Answers written without compiling anything on first use (server/plugins/serializer.ts). The first device page on a
// fresh gateway held the event loop 60-90 ms in Ajv, compiling the validators fast-json-stringify asks which branch
// of a union ("X or null", one of the device kinds) a value is. The serialiser now writes such unions by a null test
// or as a string, and compiles what unions are left before the server listens. A real gateway over real HTTP, and
// the real route schemas written by the real fast-json-stringify.
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Type } from '@sinclair/typebox';
import fastJson from 'fast-json-stringify';
import { startTestGateway, type TestGateway } from '../helpers/gateway.js';
import { forSerialising, isSchemaMap } from '../../server/plugins/serializer.js';
import { DeviceBody } from '../../server/routes/devices.js';
import { ResidentBody } from '../../server/routes/residents.js';
import { IncidentBody } from '../../server/routes/incidents.js';

/** Where a copy for the serialiser still has a union: fast-json-stringify asks Ajv for its branch at every value. */
function unionsLeft(schema: unknown, at = '#'): string[] {
  if (Array.isArray(schema)) return schema.flatMap((s, i) => unionsLeft(s, `${at}/${i}`));
  if (typeof schema !== 'object' || schema === null) return [];
  const here = 'anyOf' in schema || 'oneOf' in schema || 'if' in schema ? [at] : [];
  return here.concat(Object.entries(schema).flatMap(([k, v]) => (isSchemaMap(k) && typeof v === 'object' && v !== null
    ? Object.entries(v).flatMap(([name, s]) => unionsLeft(s, `${at}/${k}/${name}`))
    : unionsLeft(v, `${at}/${k}`))));
}

const Nullable = <T extends ReturnType<typeof Type.String>>(t: T) => Type.Union([t, Type.Null()]);

describe('the serialiser\'s copy of a response schema', () => {
  it('writes "X or null" as a nullable X and a choice of string constants as a string; other unions are kept', () => {
    const schema = Type.Object({
      a: Nullable(Type.String()),
      b: Type.Union([Type.Integer(), Type.Null()], { description: 'kept beside it' }),
      kind: Type.Union([Type.Literal('call-phone'), Type.Literal('locator')]),
      maybeKind: Type.Union([Type.Literal('x'), Type.Literal('y'), Type.Null()]),
      zone: Type.Union([Type.Object({ r: Type.Number() }), Type.Object({ points: Type.Array(Type.Number()) })]),
      // a property named like a keyword is a property
      properties: Type.Object({ anyOf: Nullable(Type.String()) }),
    });
    const before = JSON.stringify(schema);
    const copy = forSerialising(schema) as { properties: Record<string, Record<string, unknown>> };
    expect(JSON.stringify(schema), 'the route\'s own schema (validation, the API document) is not changed').toBe(before);
    expect(copy.properties.a).toEqual({ type: 'string', nullable: true });
    expect(copy.properties.b).toEqual({ type: 'integer', nullable: true, description: 'kept beside it' });
    expect(copy.properties.kind).toEqual({ type: 'string' });
    expect(copy.properties.maybeKind).toEqual({ type: 'string', nullable: true });
    expect(copy.properties.zone!.anyOf).toHaveLength(2);
    expect((copy.properties.properties as { properties: Record<string, unknown> }).properties.anyOf).toEqual({ type: 'string', nullable: true });
    expect(unionsLeft(copy)).toEqual(['#/properties/zone']);
  });

  it('the device, incident and resident answers need no validator but for a safe zone, and are written as before', () => {
    expect(unionsLeft(forSerialising(DeviceBody))).toEqual([]);
    expect(unionsLeft(forSerialising(IncidentBody))).toEqual([]);
    expect(unionsLeft(forSerialising(ResidentBody))).toEqual(['#/properties/safeZone']);
    const device = {
      id: 'cp-1', kind: 'call-phone', serial: 'SN-1', model: null, firmware: '1.2', state: 'in-service', residentId: null, unitId: 'u-1',
      power: 'battery', config: { interval: 60 }, accountScheme: null, account: null, notes: null, test: false, createdAt: 1, updatedAt: 2, secretRotatedAt: 1,
      live: { online: true, lastSeen: 5, connectedAt: null, battery: 80, signal: null, mains: null, position: { lat: 1, lon: 2 }, supervision: 'ok', unreadableCount: 0, lastUnreadableAt: null, lastUnreadableReason: null, flags: [] },
    };
    const resident = (safeZone: unknown) => ({
      id: 'r-1', name: 'Wang', address: null, unitId: null, contacts: [], safeZone, home: { lat: 1, lon: 2 }, noMovementSeconds: null, checkInBy: '08:00', notes: null, test: false, createdAt: 1, updatedAt: 1,
    });
    for (const [schema, value] of [
      [DeviceBody, device], [DeviceBody, { ...device, model: 'X1', residentId: 'r-1', live: { ...device.live, connectedAt: 3, mains: true, position: null, flags: ['low-battery'] } }],
      [ResidentBody, resident(null)], [ResidentBody, resident({ type: 'circle', center: { lat: 1, lon: 2 }, radiusM: 300 })],
      [ResidentBody, resident({ type: 'polygon', points: [{ lat: 1, lon: 2 }, { lat: 1, lon: 3 }, { lat: 2, lon: 2 }] })],
    ] as const) {
      const asBefore = fastJson(schema as never)(value);
      expect(fastJson(forSerialising(schema) as never)(value)).toBe(asBefore);
    }
  });
});

describe('a fresh gateway\'s first answers', () => {
  let t: TestGateway;
  beforeAll(async () => { t = await startTestGateway(); }, 60_000);
  afterAll(async () => t?.stop());

  it('compile no schema: every validator was compiled before the server listened', async () => {
    const dev = await t.provision('call-phone');
    const res = await t.api('POST', '/api/residents', { name: 'Li', safeZone: { type: 'circle', center: { lat: 30.5, lon: 114.3 }, radiusM: 500 } });
    expect(res.status).toBe(201);
    // the Ajv that fast-json-stringify (and the request validators) compile with: count what it compiles from here on
    const ajvCompile = createRequire(createRequire(import.meta.url).resolve('fast-json-stringify'))('ajv/dist/compile/index.js') as { compileSchema: (...a: unknown[]) => unknown };
    const compile = ajvCompile.compileSchema;
    let compiled = 0;
    ajvCompile.compileSchema = function (this: unknown, ...a: unknown[]) { compiled++; return compile.apply(this, a); };
    try {
      for (const path of ['/api/devices?limit=200', `/api/devices/${dev.id}`, '/api/residents?limit=100', '/api/incidents?limit=100', '/api/units']) {
        const r = await t.api('GET', path);
        expect(r.status, path).toBe(200);
      }
      expect(compiled, 'schemas compiled while answering').toBe(0);
    } finally {
      ajvCompile.compileSchema = compile;
    }
  });
});
