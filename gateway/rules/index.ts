// The built-in rules, in the order the engine runs them: emergencies first. A new rule is one file, listed here.
import type { DataRule } from '../../core/config.js';
import { checkInRule } from './check-in.js';
import { compileDataRules } from './data-rules.js';
import { fallRule } from './fall.js';
import { lifeSafetyRule } from './life-safety.js';
import { noMovementRule } from './no-movement.js';
import { safeZoneRule } from './safe-zone.js';
import { supervisionRule } from './supervision.js';
import { technicalRule } from './technical.js';
import { testAlarmRule } from './test-alarm.js';
import type { Rule } from './types.js';

export const builtinRules: readonly Rule[] = Object.freeze([
  lifeSafetyRule as Rule,
  fallRule as Rule,
  safeZoneRule as Rule,
  noMovementRule,
  checkInRule as Rule,
  supervisionRule as Rule,
  technicalRule,
  testAlarmRule,
]);

/** Built-in rules followed by the configured data rules (throws a ConfigError listing every problem in them). */
export function defaultRules(dataRules: readonly DataRule[] = []): Rule[] {
  return [...builtinRules, ...compileDataRules(dataRules, builtinRules.map((r) => r.name))];
}

export type * from './types.js';
export { RuleSettingsSchema, resolveRuleSettings, type RuleSettings } from './settings.js';
export { compileDataRules, OBSERVATION_FIELDS } from './data-rules.js';
