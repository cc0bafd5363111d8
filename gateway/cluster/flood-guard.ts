// Cluster mode: a device that stays over mqtt.publishRatePerS for mqtt.publishOverRateCloseMs is disconnected, as the
// embedded broker does (gateway/broker/pacing.ts). A partition is one queue: every device hashed to it waits behind a
// flood (docs/scale-out.md), and RabbitMQ 3.10 has no per-connection publish rate of its own.
//
// The rate is RabbitMQ's, read from its management statistics (each MQTT connection's channel: messages published a
// second, averaged over the statistics interval, 5 s by default), not counted by eldergate as it consumes: the
// consumer's rate is how fast a queue is drained, and after a restart it drains a backlog at thousands a second from
// devices that each sent a few. What the broker counted is what the device sent, when it sent it.
//
// Nothing a device sent is dropped here: what it published is in its queue and is stored in order. Closing it ends
// the flood at its source; it may reconnect (and is closed again if it floods again). Every message counts, alarms
// too, as RabbitMQ counts them: a device over its rate for publishOverRateCloseMs (30 s) is broken or hostile.
//
// RabbitMQ 3.10 and 3.11 run each MQTT connection over a channel of their own, whose statistics these are. 3.12's
// native MQTT has no such channel: there the guard finds no device in the statistics and says so at start.
import type { Config } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import type { Revoker } from './revoke.js';

export interface FloodGuardDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  management: Pick<Revoker, 'topPublishers' | 'closeConnections' | 'brokerVersion'>;
  /** how often the statistics are read; default rabbitmq.floodCheckMs (0: only when `check()` is called) */
  checkMs?: number;
  /** the clock (tests); default Date.now */
  now?: () => number;
}

export interface FloodGuard {
  /** one reading of the statistics, now (the timer does the same every checkMs); the devices closed */
  check(): Promise<string[]>;
  /** stop; resolves once a check in progress has ended (it closes no device after this) */
  close(): Promise<void>;
}

/**
 * The fastest publishers read at each check (RabbitMQ's largest page): a flood is a few devices, not the fleet. More
 * devices than this over their rate at once would take turns in the page and might not be closed.
 */
export const FLOOD_TOP = 500;
/** RabbitMQ sorts every channel for each reading: not more often than this */
export const FLOOD_CHECK_MIN_MS = 1000;

export function startFloodGuard(d: FloodGuardDeps): FloodGuard {
  const { config, metrics } = d;
  const log = d.log.child({ module: 'rabbitmq-flood' });
  const limited = createLogLimiter(log, { burst: config.limits.logBurst, windowMs: config.limits.logWindowMs });
  const ratePerS = config.mqtt.publishRatePerS;
  const closeAfterMs = config.mqtt.publishOverRateCloseMs;
  const checkMs = d.checkMs ?? config.rabbitmq.floodCheckMs;
  // loadConfig refuses 1–999 ms for rabbitmq.floodCheckMs; a caller's own checkMs is held to the same
  if (checkMs > 0 && checkMs < FLOOD_CHECK_MIN_MS) throw new ConfigError([`floodCheckMs: ${checkMs} ms; use 0 (never) or at least ${FLOOD_CHECK_MIN_MS}`]);
  /** device → when it was first read over its rate, in this stretch over it */
  const overSince = new Map<string, number>();
  let running: Promise<string[]> | null = null;
  let closed = false;

  const once = async (): Promise<string[]> => {
    const now = (d.now ?? Date.now)();
    const top = await d.management.topPublishers(FLOOD_TOP);
    const over = new Set<string>();
    const closing: string[] = [];
    for (const { deviceId, ratePerS: rate } of top) {
      if (rate <= ratePerS) break; // fastest first
      over.add(deviceId);
      const since = overSince.get(deviceId) ?? now;
      overSince.set(deviceId, since);
      limited.warn('over rate', deviceId, { deviceId, ratePerS: Math.round(rate), limit: ratePerS },
        'a device publishes faster than mqtt.publishRatePerS (RabbitMQ\'s statistics): the devices hashed to its partition wait behind it; check the terminal');
      if (now - since >= closeAfterMs) closing.push(deviceId);
    }
    // back under its rate: the next stretch over it starts afresh
    for (const id of overSince.keys()) if (!over.has(id)) overSince.delete(id);
    const done: string[] = [];
    for (const deviceId of closing) {
      if (closed) break;
      const overMs = now - overSince.get(deviceId)!;
      overSince.delete(deviceId);
      try {
        const n = await d.management.closeConnections(deviceId, `device over its publish rate for ${Math.round(overMs / 1000)} s`);
        if (n === 0) continue;
        metrics.connectionsRefused.inc({ listener: 'rabbitmq', reason: 'over-rate' });
        limited.warn('closed over rate', deviceId, { deviceId, overMs, connections: n },
          'closing a device that stayed over mqtt.publishRatePerS for mqtt.publishOverRateCloseMs (RabbitMQ\'s statistics): what it sent is queued and stored in order; it may reconnect; check the terminal');
        done.push(deviceId);
      } catch (err) {
        metrics.internalErrors.inc({ where: 'rabbitmq-flood' });
        limited.warn('close failed', deviceId, { deviceId, err: (err as Error).message },
          'could not close a flooding device through RabbitMQ\'s management API; tried again at the next check');
        overSince.set(deviceId, now - overMs);
      }
    }
    return done;
  };

  const check = (): Promise<string[]> => {
    running ??= once().finally(() => { running = null; });
    return running;
  };

  // off: no rate (mqtt.publishRatePerS 0), or never close (mqtt.publishOverRateCloseMs 0), or no statistics to read
  const on = ratePerS > 0 && closeAfterMs > 0 && checkMs > 0 && Boolean(config.rabbitmq.managementUrl);
  const timer = on
    ? setInterval(() => {
      if (running) return; // a slow API: this tick's reading is the one in progress
      check().catch((err: unknown) => {
        metrics.internalErrors.inc({ where: 'rabbitmq-flood' });
        limited.warn('check failed', 'api', { err: (err as Error).message },
          'could not read RabbitMQ\'s channel statistics: a flooding device is not closed until it can');
      });
    }, checkMs)
    : null;
  timer?.unref();
  if (on) {
    log.info({ ratePerS, closeAfterMs, checkMs }, 'closing devices that stay over their publish rate (RabbitMQ\'s statistics)');
    void d.management.brokerVersion().then((version) => {
      const [major = 0, minor = 0] = version.split('.').map(Number);
      if (major > 3 || (major === 3 && minor >= 12)) {
        log.warn({ version }, 'RabbitMQ 3.12 and later run MQTT without a channel per connection: the publish rates read here (channel statistics) do not include devices, so a flooding device is not closed. Measured on 3.10 only');
      }
    }, (err: unknown) => log.debug({ err: (err as Error).message }, 'could not read RabbitMQ\'s version'));
  }

  return {
    check,
    async close() {
      closed = true;
      if (timer) clearInterval(timer);
      await running?.catch(() => undefined);
    },
  };
}
