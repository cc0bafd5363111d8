// The explicit list of simulated kinds: a new kind is one file and one line here.
import { CallPhone, callPhoneProfile } from './call-phone.js';
import { FallSensor, fallSensorProfile } from './fall-sensor.js';
import { Locator, locatorProfile } from './locator.js';
import type { Terminal, TerminalOptions } from './terminal.js';
import type { KindProfile, SimKind } from './types.js';

export const PROFILES: Record<SimKind, KindProfile> = {
  'call-phone': callPhoneProfile,
  'fall-sensor': fallSensorProfile,
  locator: locatorProfile,
};

export function createTerminal(opts: TerminalOptions & { positionS?: number }): Terminal {
  switch (opts.creds.kind) {
    case 'call-phone':
      return new CallPhone(opts);
    case 'fall-sensor':
      return new FallSensor(opts);
    case 'locator':
      return new Locator(opts);
  }
}

export { CallPhone, FallSensor, Locator };
