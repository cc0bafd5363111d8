// Cluster mode (docs/scale-out.md): RabbitMQ's HTTP auth backend (rabbitmq_auth_backend_http, auth_http.http_method =
// post) asks here whether a device may connect, use the vhost, a queue or exchange, a routing key. The answers keep
// the embedded broker's promises (gateway/broker/broker.ts: authenticate, authorizePublish, authorizeSubscribe):
// clientId = username = a device id whose secret matches, of a kind that speaks MQTT, not suspended or decommissioned;
// it publishes only on its own channels (devices/<id>/events, telemetry, status, commands/ack) and subscribes only to
// its own commands. eldergate's own service user is internal to RabbitMQ (auth_backends.1 = internal): only devices
// reach this server, so anything that is not a device is refused.
//
// What RabbitMQ 3.10.8's MQTT plugin sends (watched on a real node; form-encoded, one POST per question):
//   user     username, password, vhost, client_id
//   vhost    username, vhost, ip, tags, client_id
//   resource username, vhost, resource (queue|exchange), name, permission (configure|write|read), tags, client_id
//              queue    mqtt-subscription-<client_id>qos0 / …qos1: configure, read, write (on SUBSCRIBE)
//              exchange <mqtt.exchange>: read (binding a subscription), write (each PUBLISH); never configure
//   topic    username, vhost, resource=topic, name (the exchange), permission (write|read), tags, routing_key,
//            variable_map.client_id, variable_map.username, variable_map.vhost
//              routing_key is the MQTT topic with `/` → `.`, `+` → `*` (`#` stays): a PUBLISH is asked twice (the
//              plugin, then the channel), a SUBSCRIBE once per filter, a Last Will when it is published
// Answers are `allow` (no tags: a device is never a management user) or `deny`; a malformed question is `deny` too.
//
// A separate small Fastify instance, not the public API app: private address (rabbitmq.authHost), no API plugins, no
// request logging (a user question carries the device's secret), bodies of at most AUTH_BODY_LIMIT bytes.
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import type { Config } from '../../core/config.js';
import { createLogLimiter, type Logger } from '../../core/logger.js';
import type { Metrics } from '../../core/metrics.js';
import { DEVICE_ID_RE } from '../../devices/credentials.js';
import { MQTT_KINDS } from '../../devices/kinds/index.js';
import type { DeviceRegistry } from '../../devices/registry.js';
import { DEVICE_CHANNELS } from '../device-messages.js';

/** RabbitMQ's questions are a few hundred bytes; anything much larger is not RabbitMQ */
export const AUTH_BODY_LIMIT = 4096;

export const AUTH_PATHS = {
  user: '/internal/rabbitmq/user',
  vhost: '/internal/rabbitmq/vhost',
  resource: '/internal/rabbitmq/resource',
  topic: '/internal/rabbitmq/topic',
} as const;

export type AuthKind = keyof typeof AUTH_PATHS;

export interface AuthBackendDeps {
  config: Config;
  registry: DeviceRegistry;
  log: Logger;
  metrics: Metrics;
  /**
   * A suspended device logged in with its own secret and was refused: someone may be pressing its button. Told so that
   * a person sees it (cluster mode: the ingress's report of refusals, RabbitIngress.suspendedConnect).
   */
  onSuspendedConnect?: (deviceId: string) => void;
}

export interface AuthBackend {
  port: number;
  close(): Promise<void>;
}

/** One answer: allowed, or refused with a reason from a fixed set (a metric label, never data from the request). */
export type AuthVerdict = { allow: true } | { allow: false; reason: string };

type Fields = Record<string, string>;

const ALLOW: AuthVerdict = { allow: true };
const deny = (reason: string): AuthVerdict => ({ allow: false, reason });

/** what a device publishes to, as routing-key suffixes after `devices.<id>.` (MQTT `/` becomes `.`) */
const WRITE_SUFFIXES: ReadonlySet<string> = new Set(DEVICE_CHANNELS.map((c) => c.replace(/\//g, '.')));
const QUEUE_PERMISSIONS: ReadonlySet<string> = new Set(['configure', 'write', 'read']);
const EXCHANGE_PERMISSIONS: ReadonlySet<string> = new Set(['write', 'read']);

/**
 * The decisions, apart from HTTP (exported for the consumer's own checks and for tests). Every question names the
 * device (username) and its MQTT client id; each is checked again, with the device's current state: RabbitMQ asks
 * resource and topic questions long after the login (every SUBSCRIBE and PUBLISH, behind the auth cache's TTL), so a
 * device suspended meanwhile is refused from its next uncached question on.
 */
export function createAuthDecisions(config: Config, registry: DeviceRegistry) {
  const { vhost, exchange } = config.rabbitmq;

  /** who a question is about: a device id, its own MQTT client id, our vhost */
  const identity = (f: Fields, clientId: string | undefined): AuthVerdict => {
    const id = f.username;
    if (!id || !DEVICE_ID_RE.test(id)) return deny('username is not a device id');
    // 3.10's MQTT plugin sends the client id with every question (client_id, or variable_map.client_id for topics);
    // other protocols (AMQP 0-9-1, STOMP, the management UI) send none: a device's secret opens MQTT only
    if (clientId === undefined) return deny('no client id: not an MQTT connection');
    // clientId = username = device id, as the embedded broker requires: one session per device, and the MQTT plugin
    // names the subscription queues after the client id
    if (clientId !== id) return deny('client id differs from username');
    if (f.vhost !== undefined && f.vhost !== vhost) return deny('vhost');
    return ALLOW;
  };
  const mqttKind = (id: string): AuthVerdict =>
    MQTT_KINDS.includes(registry.entry(id)!.kind) ? ALLOW : deny('kind does not connect over MQTT');
  /** the device behind a question, known and still allowed in */
  const device = (f: Fields, clientId: string | undefined): AuthVerdict => {
    const who = identity(f, clientId);
    if (!who.allow) return who;
    const entry = registry.entry(f.username!);
    if (!entry) return deny('unknown-device');
    if (entry.state === 'suspended' || entry.state === 'decommissioned') return deny(entry.state);
    return mqttKind(entry.id);
  };

  return {
    user(f: Fields): AuthVerdict {
      const who = identity(f, f.client_id);
      if (!who.allow) return who;
      // the secret before the state, as the embedded broker does; one HMAC: microseconds (entries are in memory)
      const verdict = registry.authenticate(f.username!, f.password);
      return verdict === 'ok' ? mqttKind(f.username!) : deny(verdict);
    },
    vhost(f: Fields): AuthVerdict {
      if (f.vhost === undefined) return deny('vhost');
      return device(f, f.client_id);
    },
    resource(f: Fields): AuthVerdict {
      if (f.vhost === undefined) return deny('vhost');
      const who = device(f, f.client_id);
      if (!who.allow) return who;
      const { resource, name, permission } = f;
      if (!name || !permission) return deny('malformed');
      if (resource === 'exchange') {
        return name === exchange && EXCHANGE_PERMISSIONS.has(permission) ? ALLOW : deny('resource outside the device contract');
      }
      if (resource === 'queue') {
        const own = name === `mqtt-subscription-${f.username}qos0` || name === `mqtt-subscription-${f.username}qos1`;
        return own && QUEUE_PERMISSIONS.has(permission) ? ALLOW : deny('resource outside the device contract');
      }
      return deny('resource outside the device contract');
    },
    topic(f: Fields): AuthVerdict {
      if (f.vhost === undefined) return deny('vhost');
      const who = device(f, f['variable_map.client_id'] ?? f.client_id);
      if (!who.allow) return who;
      const { resource, name, permission, routing_key: key } = f;
      if (resource !== 'topic' || !key || !permission) return deny('malformed');
      if (name !== exchange) return deny('topic outside the device contract');
      const prefix = `devices.${f.username}.`;
      if (permission === 'write') {
        // 3.10 keeps dots of MQTT topics as they are: devices/<id>/commands.ack arrives as the same routing key as
        // devices/<id>/commands/ack. Still the device's own channel, and the consumer reads it as commands/ack.
        if (key.startsWith(prefix) && WRITE_SUFFIXES.has(key.slice(prefix.length))) return ALLOW;
        return deny('publish outside the device contract');
      }
      if (permission === 'read') {
        // a wildcard (`#`, `*`) or another device's topic is a different routing key: refused
        return key === `${prefix}commands` ? ALLOW : deny('subscribe outside the device contract');
      }
      return deny('malformed');
    },
  } satisfies Record<AuthKind, (f: Fields) => AuthVerdict>;
}

/**
 * The form body as fields, or a reason it is not one: duplicated keys are refused (RabbitMQ never sends any, and a
 * second `username` must not be read differently here and there).
 */
function parseForm(body: unknown): Fields | string {
  if (typeof body !== 'string' || body.length === 0) return 'no form body';
  const fields: Fields = Object.create(null);
  for (const [k, v] of new URLSearchParams(body)) {
    if (k in fields) return 'a field given twice';
    fields[k] = v;
  }
  return fields;
}

/** Only what identifies a question in a log line; never the password, and a username only if it is a device id. */
function logFields(kind: AuthKind | 'other', f: Fields | undefined, reason: string): Record<string, unknown> {
  const out: Record<string, unknown> = { kind, reason };
  if (!f) return out;
  const id = f.username;
  if (id !== undefined) {
    // a secret typed into the username field must not reach the log
    if (DEVICE_ID_RE.test(id)) out.deviceId = id;
    else out.usernameChars = id.length;
  }
  const clientId = f['variable_map.client_id'] ?? f.client_id;
  if (clientId !== undefined) out.clientId = DEVICE_ID_RE.test(clientId) ? clientId : `(${clientId.length} characters, not a device id)`;
  for (const k of ['vhost', 'ip', 'resource', 'name', 'permission', 'routing_key'] as const) {
    if (f[k] !== undefined) out[k === 'routing_key' ? 'routingKey' : k] = f[k]!.slice(0, 200);
  }
  return out;
}

const KINDS = Object.keys(AUTH_PATHS) as AuthKind[];

export async function startAuthBackend(deps: AuthBackendDeps): Promise<AuthBackend> {
  const { config, registry, metrics } = deps;
  const log = deps.log.child({ module: 'rabbitmq-auth' });
  const decide = createAuthDecisions(config, registry);
  // a device retrying a wrong secret through a reconnect storm: a few lines per device and window, then only counted
  const limited = createLogLimiter(log, {
    burst: config.limits.logBurst, windowMs: config.limits.logWindowMs,
    onSuppressed: (kind) => metrics.logSuppressed.inc({ kind }),
  });

  const app: FastifyInstance = Fastify({
    // off: Fastify's request logging would write the body of a user question (the device's secret) on errors
    logger: false,
    bodyLimit: AUTH_BODY_LIMIT,
    // RabbitMQ keeps its connections to us open (httpc): shorter timeouts only for whoever is not RabbitMQ
    requestTimeout: 10_000,
    connectionTimeout: 10_000,
    return503OnClosing: true,
  });
  // only RabbitMQ's form bodies; JSON and text parsers are not needed here
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/x-www-form-urlencoded', { parseAs: 'string' }, (_req, body, done) => done(null, body));

  const answer = (reply: FastifyReply, kind: AuthKind | 'other', verdict: AuthVerdict, f: Fields | undefined, malformed = false) => {
    metrics.brokerAuth.inc({ kind, result: verdict.allow ? 'allow' : malformed ? 'malformed' : 'deny' });
    if (!verdict.allow) {
      metrics.refused.inc({ stage: `rabbitmq-${kind}`, reason: verdict.reason });
      const subject = f?.username && DEVICE_ID_RE.test(f.username) ? f.username : undefined;
      limited.warn(`rabbitmq-${kind}: ${verdict.reason}`, subject, logFields(kind, f, verdict.reason), `refused (RabbitMQ ${kind} question): ${verdict.reason}`);
    }
    // RabbitMQ reads a 200 with `allow` / `deny`; any other status it logs as an error of its own and refuses
    reply.code(200).header('content-type', 'text/plain; charset=utf-8').send(verdict.allow ? 'allow' : 'deny');
  };

  for (const kind of KINDS) {
    app.post(AUTH_PATHS[kind], async (req, reply) => {
      const started = process.hrtime.bigint();
      const f = parseForm(req.body);
      if (typeof f === 'string') return answer(reply, kind, deny(f), undefined, true);
      let verdict: AuthVerdict;
      try {
        verdict = decide[kind](f);
      } catch (err) {
        // a bug must refuse, never allow, and never end the process
        metrics.internalErrors.inc({ where: 'rabbitmq-auth' });
        log.error({ err, kind }, 'answering RabbitMQ failed: refused');
        verdict = deny('internal error');
      }
      answer(reply, kind, verdict, f, !verdict.allow && verdict.reason === 'malformed');
      // (the secret was checked before the state: a wrong secret is 'bad-secret', never this)
      if (kind === 'user' && !verdict.allow && verdict.reason === 'suspended') {
        try {
          deps.onSuspendedConnect?.(f.username!);
        } catch (err) {
          log.error({ err }, 'reporting a suspended device\'s login failed');
        }
      }
      metrics.stage.observe({ stage: `rabbitmq-auth-${kind}` }, Number(process.hrtime.bigint() - started) / 1e9);
    });
  }
  app.setNotFoundHandler((req, reply) => {
    const hint = req.method === 'GET' && KINDS.some((k) => req.url.startsWith(AUTH_PATHS[k]))
      ? 'RabbitMQ asks with GET: set auth_http.http_method = post'
      : 'not one of RabbitMQ\'s auth paths';
    metrics.brokerAuth.inc({ kind: 'other', result: 'malformed' });
    limited.warn('rabbitmq-auth: unknown request', undefined, { method: req.method, url: req.url.split('?')[0]!.slice(0, 200) }, `refused: ${hint}`);
    reply.code(404).header('content-type', 'text/plain; charset=utf-8').send('deny');
  });
  // a body too large, of another content type, or cut short: refused like any malformed question, the server stays up
  app.setErrorHandler((err: Error & { code?: string; statusCode?: number }, req, reply) => {
    const kind = KINDS.find((k) => req.url === AUTH_PATHS[k]) ?? 'other';
    const reason = err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' ? `body over ${AUTH_BODY_LIMIT} bytes`
      : err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE' ? 'not a form body (application/x-www-form-urlencoded)'
      : (err.statusCode ?? 500) < 500 ? 'malformed' : 'internal error';
    if (reason === 'internal error') {
      metrics.internalErrors.inc({ where: 'rabbitmq-auth' });
      log.error({ err: err.message, code: err.code, kind }, 'answering RabbitMQ failed: refused');
    }
    answer(reply, kind, deny(reason), undefined, true);
  });

  await app.listen({ host: config.rabbitmq.authHost, port: config.rabbitmq.authPort });
  const port = (app.server.address() as { port: number }).port;
  log.info({ host: config.rabbitmq.authHost, port }, 'answering RabbitMQ\'s HTTP auth backend');

  return {
    port,
    async close() {
      limited.close();
      await app.close();
    },
  };
}
