// The firmware's send buffer: every message waits here until it is on the wire (QoS 0) or PUBACKed (QoS 1).
// While offline it fills up; it is bounded like a real device's memory, and when full it sheds telemetry
// first — an alarm is dropped only when nothing but alarms is left, and that is counted loudly.
import type { OutMessage } from './types.js';

export interface OutboxLimits {
  /** messages held in total */
  max: number;
  /** telemetry held (heartbeats and positions pile up during a long outage) */
  maxTelemetry: number;
}

export const DEFAULT_OUTBOX_LIMITS: OutboxLimits = { max: 1000, maxTelemetry: 100 };

export type Dropped = { message: OutMessage; reason: 'telemetry-limit' | 'full' };

export class Outbox {
  private items: OutMessage[] = [];
  private telemetry = 0;
  droppedTelemetry = 0;
  droppedAlarms = 0;
  droppedEvents = 0;

  constructor(private readonly limits: OutboxLimits = DEFAULT_OUTBOX_LIMITS) {}

  get size(): number {
    return this.items.length;
  }

  get pendingAlarms(): number {
    let n = 0;
    for (const m of this.items) if (m.alarm) n++;
    return n;
  }

  /** in creation order: a reconnect flushes them in this order */
  all(): readonly OutMessage[] {
    return this.items;
  }

  /** add a message; returns what had to be dropped to make room (usually nothing) */
  push(m: OutMessage): Dropped[] {
    const dropped: Dropped[] = [];
    const drop = (x: OutMessage, reason: Dropped['reason']) => {
      dropped.push({ message: x, reason });
      this.count(x);
    };
    const isTelemetry = (x: OutMessage) => x.channel === 'telemetry';
    // a cancel is something the resident pressed: it stays with the alarms
    const isMinorEvent = (x: OutMessage) => x.channel === 'events' && !x.alarm && x.type !== 'cancel';
    if (isTelemetry(m) && this.telemetry >= this.limits.maxTelemetry) {
      const old = this.dropOldest(isTelemetry);
      if (old) drop(old, 'telemetry-limit');
    }
    if (this.items.length >= this.limits.max) {
      // order of sacrifice: telemetry, then minor events (test, presence…), and only when nothing else is
      // left, the oldest alarm
      let victim = this.dropOldest(isTelemetry);
      if (!victim && isTelemetry(m)) {
        drop(m, 'full');
        return dropped;
      }
      victim ??= this.dropOldest(isMinorEvent);
      if (!victim && isMinorEvent(m)) {
        drop(m, 'full');
        return dropped;
      }
      victim ??= this.dropOldest(() => true);
      if (victim) drop(victim, 'full');
    }
    this.items.push(m);
    if (isTelemetry(m)) this.telemetry++;
    return dropped;
  }

  /** the message left the buffer (QoS 0 written, QoS 1 acknowledged) */
  remove(m: OutMessage): void {
    const i = this.items.indexOf(m);
    if (i < 0) return;
    this.items.splice(i, 1);
    if (m.channel === 'telemetry') this.telemetry--;
  }

  private dropOldest(pred: (m: OutMessage) => boolean): OutMessage | undefined {
    const i = this.items.findIndex(pred);
    if (i < 0) return undefined;
    const [m] = this.items.splice(i, 1);
    if (m && m.channel === 'telemetry') this.telemetry--;
    return m;
  }

  private count(m: OutMessage): void {
    if (m.channel === 'telemetry') this.droppedTelemetry++;
    else if (m.alarm) this.droppedAlarms++;
    else this.droppedEvents++;
  }
}
