// Cluster mode: a revoked device (secret rotated, suspended, decommissioned: the registry's 'device-revoked') is cut
// off at once, as the embedded broker's onRevoked does, by closing its MQTT connections through RabbitMQ's management
// API. Without it the device stays connected and keeps publishing: RabbitMQ 3.10 asks the auth backend about a topic
// or exchange once per connection (the MQTT plugin and the channel each keep what they were allowed for the
// connection's lifetime; watched on a real node), and the auth cache answers new connections for its TTL.
//
// RabbitMQ 3.10 (watched on a real node): GET /api/connections/username/<user> lists the user's connections on every
// node at once, from connection tracking, as soon as they are open; DELETE on the same path closes them all with the
// X-Reason header. Closing one by name (DELETE /api/connections/<name>) is no use here: it looks the name up in the
// management statistics, which know a connection only after the next statistics interval (5 s by default) and answer
// 404 until then, so a device that reconnected just before it was revoked would stay connected.
import { Agent, request, type Dispatcher } from 'undici';
import type { Bus } from '../../core/bus.js';
import type { Config } from '../../core/config.js';
import type { Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { ConfigError } from '../../core/errors.js';
import { DEVICE_ID_RE } from '../../devices/credentials.js';
import { readPasswordFile } from './rabbitmq.js';

export interface RevokerDeps {
  config: Config;
  log: Logger;
  metrics: Metrics;
  /** per request to the management API; default REVOKE_TIMEOUT_MS */
  timeoutMs?: number;
  /** a second sweep this long after the first (0: none); default RESWEEP_AFTER_MS */
  resweepAfterMs?: number;
  /** tries of one sweep before it counts as failed; default 3 */
  attempts?: number;
}

export interface Revoker {
  /** close every MQTT connection of the device in the cluster; how many there were (0 when it failed: logged, counted) */
  closeDevice(deviceId: string, reason: string): Promise<number>;
  /**
   * Close the device's MQTT connections once, for what it did (not a revocation: no second sweep, not counted as
   * one); `why` goes to RabbitMQ's log. How many there were; throws when the API fails.
   */
  closeConnections(deviceId: string, why: string): Promise<number>;
  /**
   * The devices publishing fastest in the cluster, fastest first: RabbitMQ's channel statistics (messages a second,
   * averaged over its statistics interval), summed over each device's connections. Throws when the API fails.
   */
  topPublishers(limit: number): Promise<{ deviceId: string; ratePerS: number }[]>;
  /** RabbitMQ's version, from the management API's overview */
  brokerVersion(): Promise<string>;
  close(): Promise<void>;
}

export const REVOKE_TIMEOUT_MS = 5000;
/**
 * RabbitMQ's auth cache (rabbitmq_auth_backend_cache, TTL 10–15 s) may still hold the device's `allow` for a login
 * with the secret it had: a device reconnecting at once is let in without asking us, and a connection is never asked
 * about its secret again. The device's connections are swept once more after the cache has forgotten it.
 */
export const RESWEEP_AFTER_MS = 20_000;
/** one device's connections: a few hundred bytes each; more than this is not the answer we asked for */
const MAX_ANSWER_BYTES = 256 * 1024;

export function createRevoker(deps: RevokerDeps): Revoker {
  const { config, metrics } = deps;
  const log = deps.log.child({ module: 'rabbitmq-revoke' });
  const settings = config.rabbitmq;
  // eldergate_rabbitmq_revocations_total{result}: closed, none (it had no connection), failed (the device stays connected)
  const counter = metrics.rabbitRevocations;
  if (!settings.managementUrl) {
    log.warn({ setting: 'rabbitmq.managementUrl' },
      'rabbitmq.managementUrl is not set: a revoked device (suspended, decommissioned, secret rotated) is not disconnected, nor is a device that floods. RabbitMQ 3.10 keeps each connection\'s permissions for its lifetime, so it keeps publishing on the topics it already used until it disconnects; only its next CONNECT is refused, once its auth cache entry expires. Set rabbitmq.managementUrl to close its connections at once');
    return { closeDevice: async () => 0, closeConnections: async () => 0, topPublishers: async () => [], brokerVersion: async () => '', close: async () => {} };
  }
  // read at start: a missing or unreadable file is a configuration error said now, not at the first revocation
  if (!settings.passwordFile) {
    throw new ConfigError([`rabbitmq.passwordFile: rabbitmq.managementUrl is set, so the password of ${settings.username} (the management API's user) is needed: a file holding it, mode 0600`]);
  }
  const password = readPasswordFile(settings.passwordFile);
  const authorization = 'Basic ' + Buffer.from(`${settings.username}:${password}`).toString('base64');
  const base = settings.managementUrl.replace(/\/+$/, '');
  const timeoutMs = deps.timeoutMs ?? REVOKE_TIMEOUT_MS;
  // its own small pool: a slow management API holds neither the webhooks' connections nor anyone else's
  const agent = new Agent({ connections: 4, headersTimeout: timeoutMs, bodyTimeout: timeoutMs, connectTimeout: timeoutMs });

  const call = async (method: 'GET' | 'DELETE', path: string, headers: Record<string, string> = {}) => {
    const res = await request(base + path, {
      method, dispatcher: agent, headers: { authorization, accept: 'application/json', ...headers },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await readBounded(res.body);
    if (res.statusCode < 200 || res.statusCode >= 300) {
      // RabbitMQ 3.10.8 crashes on this DELETE (500, badarg in is_authorized_user) for a user without the administrator
      // tag; a monitoring user may list (GET) but not close
      const hint = res.statusCode === 401 ? ` (is ${settings.username} a RabbitMQ user with the administrator tag, and its password the one in rabbitmq.passwordFile?)`
        : res.statusCode === 500 && method === 'DELETE' ? ` (RabbitMQ 3.10 answers 500 here when ${settings.username} lacks the administrator tag: rabbitmqctl set_user_tags ${settings.username} administrator)`
        : '';
      throw new Error(`${method} ${path}: HTTP ${res.statusCode}${hint} ${text.slice(0, 200)}`);
    }
    return text;
  };

  const attempts = Math.max(1, deps.attempts ?? 3);
  const resweepAfterMs = deps.resweepAfterMs ?? RESWEEP_AFTER_MS;
  const resweeps = new Set<NodeJS.Timeout>();
  let closed = false;

  /** list, then close, the device's connections; how many were listed */
  const sweep = async (deviceId: string, reason: string): Promise<number> => {
    const path = `/api/connections/username/${encodeURIComponent(deviceId)}`;
    const listed = JSON.parse(await call('GET', path)) as unknown;
    const n = Array.isArray(listed) ? listed.length : 0;
    if (n === 0) return 0;
    // a header value is one line of visible ASCII; the reason is ours (registry), kept short all the same
    const why = `eldergate: ${reason}`.replace(/[^\x20-\x7e]/g, '?').slice(0, 200);
    await call('DELETE', path, { 'x-reason': why });
    return n;
  };
  /** a sweep, tried again after a short pause when the API failed; never throws */
  const sweepReported = async (deviceId: string, reason: string, which: 'first' | 'second'): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      try {
        const n = await sweep(deviceId, `device revoked (${reason})`);
        counter.inc({ result: n > 0 ? 'closed' : 'none' });
        if (n > 0) log.info({ deviceId, reason, connections: n, sweep: which }, 'closed a revoked device\'s MQTT connections in RabbitMQ');
        else log.debug({ deviceId, reason, sweep: which }, 'the revoked device has no connection in RabbitMQ');
        return n;
      } catch (err) {
        const status = /HTTP (\d+)/.exec((err as Error).message)?.[1];
        // a wrong password or a user without the tag will not pass by trying again
        if (attempt < attempts && !closed && status !== '401' && status !== '403') {
          await new Promise((r) => setTimeout(r, 250 * 4 ** (attempt - 1)).unref());
          continue;
        }
        counter.inc({ result: 'failed' });
        metrics.internalErrors.inc({ where: 'rabbitmq-revoke' });
        log.warn({ deviceId, reason, sweep: which, attempts: attempt, err: (err as Error).message },
          'could not close a revoked device\'s connections through RabbitMQ\'s management API: it stays connected, publishing on the topics it already used (RabbitMQ 3.10 keeps a connection\'s permissions for its lifetime), until it disconnects; close it by hand (rabbitmqctl close_all_user_connections <device id> <reason>)');
        return 0;
      }
    }
  };

  return {
    async topPublishers(limit) {
      const size = Math.max(1, Math.min(500, Math.floor(limit))); // RabbitMQ's largest page
      const answer = JSON.parse(await call('GET', `/api/channels?page=1&page_size=${size}&sort=message_stats.publish_details.rate`
        + '&sort_reverse=true&columns=user,message_stats.publish_details.rate')) as { items?: unknown };
      const rates = new Map<string, number>();
      for (const item of Array.isArray(answer.items) ? answer.items as ChannelStats[] : []) {
        const user = item?.user;
        const rate = Number(item?.message_stats?.publish_details?.rate ?? 0);
        // a device's channels only: not eldergate's own (its commands), nor another internal user's
        if (typeof user !== 'string' || user === settings.username || !DEVICE_ID_RE.test(user) || !(rate > 0)) continue;
        rates.set(user, (rates.get(user) ?? 0) + rate);
      }
      return [...rates].map(([deviceId, ratePerS]) => ({ deviceId, ratePerS })).sort((a, b) => b.ratePerS - a.ratePerS);
    },
    async brokerVersion() {
      const answer = JSON.parse(await call('GET', '/api/overview?columns=rabbitmq_version')) as { rabbitmq_version?: unknown };
      return typeof answer.rabbitmq_version === 'string' ? answer.rabbitmq_version : '';
    },
    async closeConnections(deviceId, why) {
      if (!DEVICE_ID_RE.test(deviceId)) throw new Error('closeConnections: not a device id');
      return sweep(deviceId, why);
    },
    async closeDevice(deviceId, reason) {
      // also keeps the path to one user's connections: no `/`, `..` or `%` in a device id
      if (!DEVICE_ID_RE.test(deviceId)) {
        counter.inc({ result: 'failed' });
        log.warn({ reason, idChars: String(deviceId).length }, 'closeDevice: not a device id; nothing closed');
        return 0;
      }
      const n = await sweepReported(deviceId, reason, 'first');
      if (resweepAfterMs > 0 && !closed) {
        const t = setTimeout(() => {
          resweeps.delete(t);
          void sweepReported(deviceId, reason, 'second');
        }, resweepAfterMs);
        t.unref();
        resweeps.add(t);
      }
      return n;
    },
    async close() {
      closed = true;
      for (const t of resweeps) clearTimeout(t);
      resweeps.clear();
      await agent.close();
    },
  };
}

/**
 * The embedded broker's onRevoked for cluster mode: every registry revocation (secret rotated, suspended,
 * decommissioned) closes the device's connections; the registry's caller is never held up. Returns the unsubscribe.
 */
export function closeOnRevoke(bus: Bus, revoker: Pick<Revoker, 'closeDevice'>): () => void {
  const onRevoked = ({ deviceId, reason }: { deviceId: string; reason: string }) => {
    void revoker.closeDevice(deviceId, reason);
  };
  bus.on('device-revoked', onRevoked);
  return () => bus.off('device-revoked', onRevoked);
}

interface ChannelStats { user?: unknown; message_stats?: { publish_details?: { rate?: unknown } } }

async function readBounded(body: Dispatcher.ResponseData['body']): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += (chunk as Buffer).length;
    if (size > MAX_ANSWER_BYTES) {
      body.destroy();
      throw new Error(`answer over ${MAX_ANSWER_BYTES} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}
