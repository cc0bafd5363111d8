// Settings of the built-in rules. A TypeBox schema so it can join core/config.ts as one more section
// (`ruleSettings: RuleSettingsSchema`) and be validated with everything else at start-up.
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ConfigError } from '../../core/errors.js';

const HHMM = Type.String({ pattern: '^([01][0-9]|2[0-3]):[0-5][0-9]$', description: 'local time HH:MM' });

export const RuleSettingsSchema = Type.Object(
  {
    /**
     * Local time for check-in deadlines and night hours, as a fixed offset from UTC in minutes (+480 for
     * Beijing). Absent = the host's offset at start-up. A fixed offset has no daylight-saving changes: where
     * they apply, set it twice a year or run the host in local time and leave this out.
     */
    timeZoneOffsetMinutes: Type.Optional(Type.Integer({ minimum: -840, maximum: 840 })),
    /** bed-exit during [nightStart, nightEnd) local time is P2 */
    nightStart: Type.String({ ...HHMM, default: '22:00' }),
    nightEnd: Type.String({ ...HHMM, default: '07:00' }),
    /**
     * A bed exit by day: P3 (seen, joined into one card per device) or 'none' (kept in the observation history,
     * no incident). P3 by default because a life-safety observation is never dropped silently.
     */
    bedExitDayPriority: Type.Union([Type.Literal('P3'), Type.Literal('none')], { default: 'P3' }),
    /** cancel window of a fall when neither the device nor its kind declares one */
    defaultCancelWindowMs: Type.Integer({ minimum: 0, default: 30_000 }),
    /** a locator must be this far outside the zone (or its fix accuracy, if larger) to count as an exit */
    safeZoneHysteresisM: Type.Number({ minimum: 0, default: 30 }),
    /** a resident whose noMovementSeconds is null */
    noMovementDefaultSeconds: Type.Integer({ minimum: 60, default: 12 * 3600 }),
    /** low battery clears once the level is this many points above the kind's threshold */
    lowBatteryHysteresisPct: Type.Number({ minimum: 0, default: 10 }),
  },
  { default: {}, additionalProperties: false },
);

export type RuleSettings = Static<typeof RuleSettingsSchema>;

/** Defaults applied and checked; throws a ConfigError listing every problem. */
export function resolveRuleSettings(input: Partial<RuleSettings> | undefined): RuleSettings {
  const value = Value.Default(RuleSettingsSchema, Value.Clone(input ?? {})) as RuleSettings;
  const problems = [...Value.Errors(RuleSettingsSchema, value)].map(
    (e) => `ruleSettings${e.path.replace(/\//g, '.')}: ${e.message} (got ${JSON.stringify(e.value)})`,
  );
  if (problems.length) throw new ConfigError(problems);
  return value;
}

/** Minutes after local midnight of "HH:MM", or null if malformed. */
export function parseHhmm(s: string | null | undefined): number | null {
  const m = typeof s === 'string' ? /^([01]?[0-9]|2[0-3]):([0-5][0-9])$/.exec(s) : null;
  return m ? Number(m[1]) * 60 + Number(m[2]) : null;
}

const DAY = 86_400_000;

/** Minutes after local midnight at `now`. */
export function localMinuteOfDay(now: number, offsetMinutes: number): number {
  const local = now + offsetMinutes * 60_000;
  return Math.floor((((local % DAY) + DAY) % DAY) / 60_000);
}

/** The local calendar day number (days since 1970-01-01 local) of `now`. */
export function localDay(now: number, offsetMinutes: number): number {
  return Math.floor((now + offsetMinutes * 60_000) / DAY);
}

/** Epoch ms of "minute of day" on local day `day`. */
export function atLocal(day: number, minuteOfDay: number, offsetMinutes: number): number {
  return day * DAY + minuteOfDay * 60_000 - offsetMinutes * 60_000;
}

/** Whether a minute of day lies in [start, end), the interval wrapping midnight when start > end. */
export function inWindow(minute: number, start: number, end: number): boolean {
  return start <= end ? minute >= start && minute < end : minute >= start || minute < end;
}
