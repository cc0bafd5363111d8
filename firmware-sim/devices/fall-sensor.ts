// Fall sensor (wearable or radar): reports a fall with a confidence, which the firmware's sensitivity setting
// filters; the resident can cancel. Battery powered, supervised tightly (a dead sensor is a resident without
// protection).
import { Terminal, type TerminalOptions } from './terminal.js';
import type { FallSensitivity, KindProfile, OutMessage } from './types.js';

export const fallSensorProfile: KindProfile = {
  kind: 'fall-sensor',
  keepaliveS: 60,
  heartbeatS: 300,
  drainPerHour: 0.5,
  mains: false,
  events: ['fall', 'cancel', 'no-movement', 'tamper', 'test', 'check-in'],
  fleetAlarm: 'fall',
};

/** the least confidence a detection needs to be reported, per sensitivity */
export const FALL_THRESHOLDS: Record<FallSensitivity, number> = { low: 0.8, medium: 0.6, high: 0.4 };

export class FallSensor extends Terminal {
  sensitivity: FallSensitivity = 'medium';
  /** detections below the threshold, not reported */
  suppressedFalls = 0;

  constructor(opts: TerminalOptions) {
    super(fallSensorProfile, opts);
  }

  /** a fall detected with `confidence` (0..1); null when the sensitivity setting filters it out (or dead) */
  fall(confidence = 0.92): OutMessage | null {
    if (confidence < FALL_THRESHOLDS[this.sensitivity]) {
      this.suppressedFalls++;
      return null;
    }
    return this.event('fall', { confidence: Math.round(confidence * 100) / 100 });
  }

  cancel(): OutMessage | null {
    return this.event('cancel');
  }

  /** radar presence (telemetry): someone is in the room, or not */
  presence(present: boolean): OutMessage | null {
    return this.telemetry('presence', { present }, 1);
  }

  protected override configureParam(key: string, value: unknown): string | null {
    if (key === 'fallSensitivity') {
      if (value === 'low' || value === 'medium' || value === 'high') {
        this.sensitivity = value;
        return null;
      }
      return 'fallSensitivity must be "low", "medium" or "high"';
    }
    return super.configureParam(key, value);
  }
}
