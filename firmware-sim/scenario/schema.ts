// The scenario file format, as TypeBox schemas. A step names exactly one action by its key (`sos: phone`), so
// each action has its own schema and its own precise errors instead of one vague "expected union".
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { DURATION_PATTERN } from '../core/duration.js';
import { SIM_KINDS } from '../devices/types.js';
import { PROTOCOL_SIM_KINDS } from '../protocols/types.js';

/** every kind a scenario group may have: the MQTT terminals and the terminals of the gateway's own protocols */
export const SCENARIO_KINDS = [...SIM_KINDS, ...PROTOCOL_SIM_KINDS] as const;
export type ScenarioKind = (typeof SCENARIO_KINDS)[number];
export const isProtocolKind = (k: string): k is (typeof PROTOCOL_SIM_KINDS)[number] => (PROTOCOL_SIM_KINDS as readonly string[]).includes(k);

/** `errorMessage` is ours (TypeBox keeps unknown options): what to tell a test engineer instead of "expected union" */
const Duration = (description: string) =>
  Type.Union([Type.Number({ minimum: 0 }), Type.String({ pattern: DURATION_PATTERN })], {
    description,
    errorMessage: 'must be a duration like 500ms, 2s, 1.5m, 1h (or a number of seconds)',
  });
const Literals = <T extends string>(values: readonly T[], what: string) =>
  Type.Union(
    values.map((v) => Type.Literal(v)),
    { errorMessage: `${what} must be one of: ${values.join(', ')}` },
  );
const LatLon = Type.Object(
  { lat: Type.Number({ minimum: -90, maximum: 90 }), lon: Type.Number({ minimum: -180, maximum: 180 }) },
  { additionalProperties: false },
);
/** `all`, a group (`phones`), one device of a group (`phones[0]`) or a range (`phones[0..9]`) */
const Target = Type.String({
  minLength: 1,
  pattern: '^[a-z][a-z0-9-]*(\\[[0-9]+(\\.\\.[0-9]+)?\\])?$',
  errorMessage: 'must name devices: all, a group (phones), one device (phones[0]) or a range (phones[0..9])',
});
const Count = Type.Integer({ minimum: 1, description: 'act on this many devices of the target (seeded pick)' });

export const ResidentSchema = Type.Object(
  {
    name: Type.Optional(Type.String({ minLength: 1 })),
    home: Type.Optional(LatLon),
    safeZoneRadiusM: Type.Optional(Type.Number({ minimum: 0, description: '0 = no safe zone' })),
    unitId: Type.Optional(Type.String({ minLength: 1 })),
    noMovementSeconds: Type.Optional(Type.Integer({ minimum: 1 })),
  },
  { additionalProperties: false },
);

export const GroupSchema = Type.Object(
  {
    name: Type.String({
      pattern: '^[a-z][a-z0-9-]*$',
      errorMessage: 'a group name is lower case letters, digits and dashes, starting with a letter (e.g. phones)',
    }),
    kind: Literals(SCENARIO_KINDS, 'kind'),
    count: Type.Optional(Type.Integer({ minimum: 1, maximum: 200_000 })),
    /** `--scale N` multiplies the count of groups marked `scale: true` (reconnect storms sized for CI or for real) */
    scale: Type.Optional(Type.Boolean()),
    /** true: a resident per device with a home and a 300 m safe zone; or the resident's details */
    resident: Type.Optional(Type.Union([Type.Boolean(), ResidentSchema], { errorMessage: 'resident must be true/false or {name?, home?, safeZoneRadiusM?, unitId?, noMovementSeconds?}' })),
    heartbeat: Type.Optional(Duration('heartbeat interval (DC-09: the NULL poll interval)')),
    keepalive: Type.Optional(Duration('MQTT keepalive')),
    positionEvery: Type.Optional(Duration('locator position report interval')),
    battery: Type.Optional(Type.Number({ minimum: 0, maximum: 100 })),
    /** percentage points per hour */
    drain: Type.Optional(Type.Number({ minimum: 0 })),
    /** power on at the start (default) or wait for a `connect` step */
    autoConnect: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const FirmwareSchema = Type.Object(
  {
    backoffInitial: Type.Optional(Duration('first reconnect delay')),
    backoffMax: Type.Optional(Duration('longest reconnect delay')),
    ackTimeout: Type.Optional(Duration('resend an alarm after this long without PUBACK')),
    connectRate: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'connections per second at power on' })),
    willRetain: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

/** MQTT terminals take the first four; watch and JT/T 808 terminals acknowledge-alarm, locate-now and the last three */
const COMMAND_TYPES = ['acknowledge-alarm', 'configure', 'locate-now', 'test-alarm', 'call-back', 'send-text', 'set-contacts'] as const;

// ── expectations ─────────────────────────────────────────────────────────────────────────────────────

const IncidentMatch = Type.Object(
  {
    device: Type.Optional(Target),
    type: Type.String({ minLength: 1 }),
    priority: Type.Optional(Literals(['P1', 'P2', 'P3'] as const, 'priority')),
    status: Type.Optional(
      Literals(['open', 'acknowledged', 'dispatched', 'on-site', 'resolved', 'cancelled'] as const, 'status'),
    ),
    test: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);

export const EXPECTATIONS = {
  incident: Type.Object(
    {
      incident: IncidentMatch,
      within: Type.Optional(Duration('from the step (or the start) to the incident')),
    },
    { additionalProperties: false },
  ),
  'no-incident': Type.Object(
    {
      'no-incident': Type.Object(
        {
          device: Type.Optional(Target),
          type: Type.Optional(Type.String({ minLength: 1 })),
          priority: Type.Optional(Literals(['P1', 'P2', 'P3'] as const, 'priority')),
        },
        { additionalProperties: false },
      ),
      within: Type.Optional(Duration('how long to watch (default: the rest of the run)')),
    },
    { additionalProperties: false },
  ),
  latency: Type.Object(
    {
      latency: Type.Object(
        {
          metric: Literals(['puback', 'incident', 'ack-command'] as const, 'metric'),
          p50: Type.Optional(Duration('bound on the median')),
          p90: Type.Optional(Duration('bound on the 90th percentile')),
          p99: Type.Optional(Duration('bound on the 99th percentile')),
          max: Type.Optional(Duration('bound on the worst')),
        },
        { additionalProperties: false },
      ),
    },
    { additionalProperties: false },
  ),
  delivered: Type.Object(
    {
      delivered: Type.Object(
        { device: Type.Optional(Target) },
        { additionalProperties: false, description: 'every event PUBACKed and stored exactly once (GET /api/observations)' },
      ),
      within: Type.Optional(Duration('how long to wait for the last PUBACK')),
    },
    { additionalProperties: false },
  ),
  connected: Type.Object(
    {
      connected: Type.Object(
        { device: Type.Optional(Target), count: Type.Optional(Type.Integer({ minimum: 0 })) },
        { additionalProperties: false },
      ),
      within: Type.Optional(Duration('how long to wait')),
    },
    { additionalProperties: false },
  ),
  cleared: Type.Object(
    {
      cleared: Type.Object(
        { device: Type.Optional(Target), type: Type.String({ minLength: 1 }) },
        { additionalProperties: false, description: 'an incident of this type cleared by the gateway itself (the device is back: offline, comm-lost)' },
      ),
      within: Type.Optional(Duration('from the step to the incident cleared')),
    },
    { additionalProperties: false },
  ),
  command: Type.Object(
    {
      command: Type.Object(
        { device: Type.Optional(Target), type: Literals(COMMAND_TYPES, 'command type') },
        { additionalProperties: false },
      ),
      within: Type.Optional(Duration('from the step to the command reaching the device')),
    },
    { additionalProperties: false },
  ),
} satisfies Record<string, TSchema>;

export type ExpectationKind = keyof typeof EXPECTATIONS;
export const EXPECTATION_KINDS = Object.keys(EXPECTATIONS) as ExpectationKind[];

// ── timeline actions ─────────────────────────────────────────────────────────────────────────────────

const step = <P extends Record<string, TSchema>>(key: string, target: TSchema, extra: P) =>
  Type.Object(
    {
      at: Type.Optional(Duration('when, from the start of the run (default: right after the previous step)')),
      label: Type.Optional(Type.String({ minLength: 1 })),
      expect: Type.Optional(Type.Array(Type.Unknown())),
      [key]: target,
      ...extra,
    },
    { additionalProperties: false },
  );

export const ACTIONS = {
  connect: step('connect', Target, { count: Type.Optional(Count), ramp: Type.Optional(Duration('spread the connections over')) }),
  disconnect: step('disconnect', Target, {
    count: Type.Optional(Count),
    for: Type.Optional(Duration('network back after (default: until a connect step)')),
  }),
  silence: step('silence', Target, {
    count: Type.Optional(Count),
    for: Type.Optional(Duration('reboot after (default: silent for good)')),
    mode: Type.Optional(Literals(['dead', 'mute'] as const, 'mode')),
  }),
  flap: step('flap', Target, {
    count: Type.Optional(Count),
    times: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })),
    period: Type.Optional(Duration('one down-and-up cycle')),
  }),
  reboot: step('reboot', Target, { count: Type.Optional(Count) }),
  sos: step('sos', Target, { count: Type.Optional(Count) }),
  fall: step('fall', Target, { count: Type.Optional(Count), confidence: Type.Optional(Type.Number({ minimum: 0, maximum: 1 })) }),
  cancel: step('cancel', Target, { count: Type.Optional(Count) }),
  event: step('event', Target, {
    count: Type.Optional(Count),
    type: Type.String({ minLength: 1 }),
    data: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  'walk-out-of-zone': step('walk-out-of-zone', Target, {
    count: Type.Optional(Count),
    over: Type.Optional(Duration('time taken to walk out')),
    distance: Type.Optional(Type.Number({ exclusiveMinimum: 0, description: 'metres from the zone centre' })),
  }),
  'return-home': step('return-home', Target, { count: Type.Optional(Count), over: Type.Optional(Duration('time taken')) }),
  battery: step('battery', Target, { count: Type.Optional(Count), level: Type.Number({ minimum: 0, maximum: 100 }) }),
  position: step('position', Target, { count: Type.Optional(Count), lat: Type.Optional(Type.Number({ minimum: -90, maximum: 90 })), lon: Type.Optional(Type.Number({ minimum: -180, maximum: 180 })) }),
  heartbeat: step('heartbeat', Target, { count: Type.Optional(Count) }),
  command: step('command', Target, {
    count: Type.Optional(Count),
    type: Literals(COMMAND_TYPES, 'command type'),
    params: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  }),
  acknowledge: step('acknowledge', Target, {
    count: Type.Optional(Count),
    type: Type.Optional(Type.String({ minLength: 1, description: 'only incidents of this type' })),
  }),
  wait: Type.Object(
    {
      at: Type.Optional(Duration('when')),
      label: Type.Optional(Type.String({ minLength: 1 })),
      expect: Type.Optional(Type.Array(Type.Unknown())),
      wait: Duration('how long'),
    },
    { additionalProperties: false },
  ),
} satisfies Record<string, TSchema>;

export type ActionKind = keyof typeof ACTIONS;
export const ACTION_KINDS = Object.keys(ACTIONS) as ActionKind[];

const MQTT_ONLY = SIM_KINDS;

/**
 * Which kinds can do what (the firmware refuses the rest; better to say so before the run). A protocol terminal
 * speaks only what its protocol carries: no cancel, no free event, no battery level on demand. DC-09 has no fall in
 * standard Contact ID (1102 is a fall only in some vendors' tables) and no position.
 */
export const ACTION_KINDS_ALLOWED: Partial<Record<ActionKind, readonly string[]>> = {
  sos: ['call-phone', 'locator', 'watch', 'jt808', 'dc09'],
  fall: ['fall-sensor', 'watch', 'jt808'],
  cancel: ['call-phone', 'fall-sensor', 'locator'],
  'walk-out-of-zone': ['locator'],
  'return-home': ['locator'],
  silence: MQTT_ONLY,
  flap: MQTT_ONLY,
  reboot: MQTT_ONLY,
  event: MQTT_ONLY,
  battery: MQTT_ONLY,
  position: ['watch', 'jt808'],
  heartbeat: PROTOCOL_SIM_KINDS,
};

export const ScenarioShape = Type.Object(
  {
    name: Type.String({ minLength: 1 }),
    description: Type.Optional(Type.String()),
    seed: Type.Optional(Type.Integer({ minimum: 0, maximum: 4294967295 })),
    settle: Type.Optional(Duration('wait after the timeline before the final checks')),
    firmware: Type.Optional(FirmwareSchema),
    devices: Type.Array(GroupSchema, { minItems: 1 }),
    timeline: Type.Array(Type.Unknown(), { default: [] }),
    expect: Type.Optional(Type.Array(Type.Unknown())),
  },
  { additionalProperties: false },
);

export type GroupSpec = Static<typeof GroupSchema>;
export type ResidentSpecInput = Static<typeof ResidentSchema>;
