// Reusable building blocks of device kinds: one definition of each message, shared by the kinds that send it.
import { Type } from '@sinclair/typebox';
import type { MessageSpec } from './types.js';

export const PositionSchema = Type.Object({
  lat: Type.Number({ minimum: -90, maximum: 90 }),
  lon: Type.Number({ minimum: -180, maximum: 180 }),
  accuracy: Type.Optional(Type.Number({ minimum: 0, maximum: 100000 })),
  at: Type.Optional(Type.Integer({ minimum: 0 })),
});

const Percent = Type.Integer({ minimum: 0, maximum: 100 });

const alarm = (type: MessageSpec['type']): MessageSpec => ({
  type,
  fields: Type.Object({ position: Type.Optional(PositionSchema) }),
});

export const sos = () => ({ sos: alarm('sos') });
export const callRequest = () => ({ 'call-request': alarm('call-request') });
export const removed = () => ({ removed: alarm('removed') });
export const cancel = () => ({ cancel: { type: 'cancel', fields: Type.Object({}) } satisfies MessageSpec });
export const test = () => ({ test: { type: 'test', fields: Type.Object({}) } satisfies MessageSpec });
export const fall = () => ({
  fall: {
    type: 'fall',
    fields: Type.Object({
      confidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })),
      position: Type.Optional(PositionSchema),
    }),
  } satisfies MessageSpec,
});
export const noMovement = () => ({
  'no-movement': {
    type: 'no-movement',
    fields: Type.Object({ seconds: Type.Optional(Type.Integer({ minimum: 0 })) }),
  } satisfies MessageSpec,
});
export const presence = () => ({
  presence: { type: 'presence', fields: Type.Object({ present: Type.Boolean() }) } satisfies MessageSpec,
});
export const checkIn = () => ({ 'check-in': { type: 'check-in', fields: Type.Object({}) } satisfies MessageSpec });
export const power = () => ({
  'power-lost': { type: 'power-lost', fields: Type.Object({}) } satisfies MessageSpec,
  'power-restored': { type: 'power-restored', fields: Type.Object({}) } satisfies MessageSpec,
});
export const tamper = () => ({ tamper: { type: 'tamper', fields: Type.Object({}) } satisfies MessageSpec });

export const heartbeat = () => ({
  heartbeat: {
    type: 'heartbeat',
    fields: Type.Object({
      battery: Type.Optional(Percent),
      signal: Type.Optional(Type.Integer({ minimum: -150, maximum: 100 })),
      mains: Type.Optional(Type.Boolean()),
    }),
  } satisfies MessageSpec,
});
export const battery = () => ({
  battery: { type: 'battery', fields: Type.Object({ level: Percent }) } satisfies MessageSpec,
});
export const position = () => ({
  position: {
    type: 'position',
    fields: Type.Object({
      lat: Type.Number({ minimum: -90, maximum: 90 }),
      lon: Type.Number({ minimum: -180, maximum: 180 }),
      accuracy: Type.Optional(Type.Number({ minimum: 0, maximum: 100000 })),
      battery: Type.Optional(Percent),
    }),
  } satisfies MessageSpec,
});
