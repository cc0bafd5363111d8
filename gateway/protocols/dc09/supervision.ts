// Supervision of each panel's reporting path (EN 50136: the receiving centre notices a path that stopped): every
// provisioned DC-09 account is expected to poll (NULL) or report within its interval; silent for interval ×
// pollMissFactor → one `comm-lost` observation for its device (a P2 card: a DC-09 hub is a life-safety kind); the next
// poll or event → `comm-restored`, which clears it, also when it arrives while the comm-lost is being written.
//
// Across a restart: the open comm-lost card is in the database, not here. So the first contact of each account
// after start reports `comm-restored` (detail.afterStart) — the rule clears a card left open and does nothing
// otherwise — and a card is never left standing for a link that is back. A panel that went silent while the gateway
// was down is caught from start: accounts the gateway lists at start (when it can) are expected from that moment.
//
// Deadlines run on the monotonic clock: a wall-clock step must neither raise every panel's card nor hide one. One
// interval timer for all links, cleared in close().
import type { Logger } from '../../../core/logger.js';

export type LinkState = 'unknown' | 'ok' | 'lost';

interface Link {
  deviceId: string;
  account: string;
  limitMs: number;
  intervalMs: number;
  /** monotonic ms of the last poll or event */
  lastContact: number;
  /** epoch ms of the same, for details */
  lastContactAt: number | null;
  state: LinkState;
  /** reports of this link, one after the other */
  chain: Promise<void>;
  /** reports queued or running */
  pending: number;
}

export interface PollSupervisorOptions {
  /** epoch ms, for observations */
  now(): number;
  /** monotonic ms (default performance.now) */
  mono?: () => number;
  factor: number;
  log: Logger;
  /** store the observation; resolves once durable, rejects when it could not be stored (tried again later) */
  report(deviceId: string, type: 'comm-lost' | 'comm-restored', detail: Record<string, unknown>): Promise<void>;
  /** still provisioned and not suspended? A link whose device is gone is forgotten. */
  stillSupervised(deviceId: string, account: string): boolean;
}

export class PollSupervisor {
  private readonly links = new Map<string, Link>();
  private timer: NodeJS.Timeout | undefined;
  private tickMs = 0;
  private closed = false;
  private readonly mono: () => number;

  constructor(private readonly o: PollSupervisorOptions) {
    this.mono = o.mono ?? (() => performance.now());
  }

  /** Expect this account from now on, without a contact (start-up: a panel silent since before the restart). */
  expect(deviceId: string, account: string, intervalMs: number): void {
    if (this.closed || this.links.has(deviceId)) return;
    this.links.set(deviceId, this.newLink(deviceId, account, intervalMs, 'unknown', null));
    this.arm(intervalMs * this.o.factor);
  }

  /**
   * A poll or an event from the account, already handled. Resolves once a due `comm-restored` is durable (or its
   * failure is logged: the next contact tries again).
   */
  contact(deviceId: string, account: string, intervalMs: number): Promise<void> {
    if (this.closed) return Promise.resolve();
    let link = this.links.get(deviceId);
    if (!link) {
      link = this.newLink(deviceId, account, intervalMs, 'unknown', null);
      this.links.set(deviceId, link);
    }
    link.account = account;
    link.intervalMs = intervalMs;
    link.limitMs = intervalMs * this.o.factor;
    const silentMs = link.lastContactAt === null ? null : this.o.now() - link.lastContactAt;
    link.lastContact = this.mono();
    link.lastContactAt = this.o.now();
    this.arm(link.limitMs);
    // nothing to restore only when nothing is being written: a comm-lost job may be running (its check passed before
    // this poll), and it will set `lost` once durable; the restore queued behind it clears that card
    if (link.state === 'ok' && link.pending === 0) return Promise.resolve();
    const l = link;
    const afterStart = l.state === 'unknown';
    return this.enqueue(l, async () => {
      if (l.state === 'ok') return;
      try {
        await this.o.report(l.deviceId, 'comm-restored', {
          account: l.account, intervalS: l.intervalMs / 1000, ...(afterStart ? { afterStart: true } : { silentMs }),
        });
        l.state = 'ok';
        if (!afterStart) this.o.log.info({ deviceId: l.deviceId, account: l.account }, 'DC-09 reporting path restored');
      } catch (err) {
        this.o.log.error({ err, deviceId: l.deviceId }, 'could not store comm-restored; the next poll tries again');
      }
    });
  }

  state(deviceId: string): LinkState | undefined {
    return this.links.get(deviceId)?.state;
  }

  size(): number {
    return this.links.size;
  }

  /** Check every link once (the timer calls it; tests may too). */
  tick(): void {
    if (this.closed) return;
    const now = this.mono();
    for (const link of this.links.values()) {
      if (link.state === 'lost' || link.pending > 0) continue;
      if (now - link.lastContact <= link.limitMs) continue;
      if (!this.o.stillSupervised(link.deviceId, link.account)) {
        this.links.delete(link.deviceId);
        continue;
      }
      const l = link;
      void this.enqueue(l, async () => {
        // a contact may have come while this waited
        if (l.state === 'lost' || this.mono() - l.lastContact <= l.limitMs) return;
        try {
          await this.o.report(l.deviceId, 'comm-lost', {
            account: l.account,
            intervalS: l.intervalMs / 1000,
            limitS: Math.round(l.limitMs / 1000),
            lastContactAt: l.lastContactAt,
            ...(l.lastContactAt === null ? { sinceStart: true } : {}),
          });
          l.state = 'lost';
          this.o.log.warn({ deviceId: l.deviceId, account: l.account, limitMs: l.limitMs }, 'DC-09 reporting path lost: no poll nor event');
        } catch (err) {
          this.o.log.error({ err, deviceId: l.deviceId }, 'could not store comm-lost; trying again at the next check');
        }
      });
    }
  }

  async close(drainMs = 5000): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    let t: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all([...this.links.values()].map((l) => l.chain)),
      new Promise<void>((r) => (t = setTimeout(r, drainMs))),
    ]);
    clearTimeout(t);
    this.links.clear();
  }

  private newLink(deviceId: string, account: string, intervalMs: number, state: LinkState, at: number | null): Link {
    return {
      deviceId, account, intervalMs, limitMs: intervalMs * this.o.factor, lastContact: this.mono(), lastContactAt: at,
      state, chain: Promise.resolve(), pending: 0,
    };
  }

  private enqueue(link: Link, job: () => Promise<void>): Promise<void> {
    link.pending++;
    link.chain = link.chain.then(job).finally(() => {
      link.pending--;
    });
    return link.chain;
  }

  /** One timer for all links, often enough for the shortest limit (a quarter of it, between 50 ms and 5 s). */
  private arm(limitMs: number): void {
    const want = Math.max(50, Math.min(5000, Math.floor(limitMs / 4)));
    if (this.timer && want >= this.tickMs) return;
    if (this.timer) clearInterval(this.timer);
    this.tickMs = want;
    this.timer = setInterval(() => this.tick(), want);
    this.timer.unref();
  }
}
