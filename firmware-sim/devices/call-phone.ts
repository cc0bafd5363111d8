// One-key-call phone / SOS button: mains powered with a backup battery, a short keepalive (it has power to spare).
import { Terminal, type TerminalOptions } from './terminal.js';
import type { KindProfile, OutMessage } from './types.js';

export const callPhoneProfile: KindProfile = {
  kind: 'call-phone',
  keepaliveS: 120,
  heartbeatS: 300,
  // the backup battery only drains when mains is lost
  drainPerHour: 0,
  mains: true,
  events: ['sos', 'cancel', 'call-request', 'test', 'power-lost', 'power-restored'],
  fleetAlarm: 'sos',
};

export class CallPhone extends Terminal {
  private onMains = true;

  constructor(opts: TerminalOptions) {
    super(callPhoneProfile, opts);
  }

  sos(): OutMessage | null {
    return this.event('sos');
  }

  cancel(): OutMessage | null {
    return this.event('cancel');
  }

  callRequest(): OutMessage | null {
    return this.event('call-request');
  }

  /** mains lost: report it, and the backup battery starts to drain (about a day of backup) */
  powerLost(): OutMessage | null {
    this.onMains = false;
    this.drainPerHour = 4;
    return this.event('power-lost');
  }

  powerRestored(): OutMessage | null {
    this.onMains = true;
    this.drainPerHour = 0;
    return this.event('power-restored');
  }

  protected override heartbeatExtras(): Record<string, unknown> {
    return { mains: this.onMains };
  }
}
