// The HTTP server. Load order is visible here and matters for security: external plugins → our plugins (errors,
// auth) → routes. Fastify uses the gateway's own pino instance.
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import { AjvCompiler } from '@fastify/ajv-compiler';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import { apiAdmission } from './plugins/api-admission.js';
import { buildSerializer } from './plugins/serializer.js';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AppDeps } from './deps.js';
import type { SharedSession, SharedTables } from '../core/shared-tables.js';
import type { Logger } from '../core/logger.js';
import { installErrorHandler } from './plugins/errors.js';
import { authPlugin, publicOrAdmin } from './plugins/auth.js';
import { authRoutes } from './routes/auth.js';
import { deviceRoutes } from './routes/devices.js';
import { residentRoutes } from './routes/residents.js';
import { observationRoutes } from './routes/observations.js';
import { healthRoutes } from './routes/health.js';
import { capConnections } from './connection-cap.js';
import { BUILD } from '../core/metrics.js';
import { connectionCapSettings, deriveConnectionCaps } from '../core/limits.js';

type OpenApiDoc = { paths?: Record<string, Record<string, { requestBody?: unknown; responses?: Record<string, unknown> }>> };

/** Routes that need no bearer token (the document's default is the bearer scheme); metrics and docs by setting. */
function isPublic(route: string, config: AppDeps['config']): boolean {
  if (route === 'POST /api/auth/login' || route === 'GET /healthz' || route === 'GET /readyz') return true;
  if (route === 'GET /metrics') return config.http.metricsPublic;
  return false;
}

/** Routes whose body and answer are CSV (a content-type parser, not a body schema, reads them). */
const CSV_ROUTES: [path: string, method: string, body: string, status: string, answer: string][] = [
  ['/api/devices/import', 'post', 'serial,kind[,model,firmware,power] with a header line; at most 50,000 lines', '201', 'id,serial,kind,secret: the devices created with their secrets, shown once'],
];

/** Route plugins contributed by other parts (incidents, network, WebSocket, console), registered after ours. */
export type ExtraRoutes = { name: string; plugin: FastifyPluginAsync<{ deps: AppDeps }> }[];

const ajvCompilers = AjvCompiler();
type BuildValidator = ReturnType<typeof AjvCompiler>;
const bodyAsSent: BuildValidator = (external, options) => {
  const coercing = ajvCompilers(external, options);
  const asSent = ajvCompilers(external, { ...options, customOptions: { ...options?.customOptions, coerceTypes: false } } as typeof options);
  return (route) => (route.httpPart === 'body' ? asSent : coercing)(route);
};

export async function buildApp(deps: AppDeps, extra: ExtraRoutes = []): Promise<FastifyInstance> {
  const { config } = deps;
  const https = config.tls.certFile && config.tls.keyFile
    ? { key: readFileSync(config.tls.keyFile), cert: readFileSync(config.tls.certFile) }
    : null;
  const app = Fastify({
    loggerInstance: deps.log.child({ module: 'http' }) as FastifyBaseLogger,
    ...(https ? { https } : {}),
    bodyLimit: 1024 * 1024,
    // a login retried by a flaky phone network must not hang the console forever
    requestTimeout: 30_000,
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { coerceTypes: 'array', removeAdditional: false, allErrors: false } },
    // query strings and params are text, so they are coerced ("5" → 5); a JSON body is not: coercion would turn
    // `"unitId": null` into "" (and a null number into 0), so a body's types are taken as sent
    // answers are written by fast-json-stringify from a copy of each response schema whose unions need no validator
    // where they can (plugins/serializer.ts: the first device page held the event loop 60-90 ms compiling them)
    schemaController: { compilersFactory: { buildValidator: bodyAsSent, buildSerializer: buildSerializer as never } },
  }).withTypeProvider<TypeBoxTypeProvider>();

  // 1. external plugins
  await app.register(swagger, {
    openapi: {
      info: {
        title: 'eldergate API', version: BUILD.version,
        description: 'Devices, residents, incidents and the response network. Send `Authorization: Bearer <token>` ' +
          '(from POST /api/auth/login; the Authorize button here). The live alarm stream is a WebSocket at `/ws`, ' +
          'described under the tag "websocket" below and in docs/websocket.md.',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
      tags: [
        {
          name: 'websocket',
          description: 'GET /ws upgrades to a WebSocket (subprotocol `eldergate.v1`) that streams incident events to ' +
            'consoles: replay from the durable log after the last `seq` seen, then live, in order, with no gap. ' +
            'Authenticate before the upgrade with `Authorization: Bearer <token>`, or from a browser by offering ' +
            '`eldergate.bearer.<token>` as a second subprotocol. Send `{"type":"subscribe","scope":"all","since":<seq>}`, ' +
            'then `ack` and `ping`; receive `hello`, `subscribed`, `incident`, `replayed`, `pong`, `error`. The full ' +
            'protocol (messages, close codes, back-pressure): docs/websocket.md in the repository.',
        },
      ],
    },
    // the document says what the routes do: no bearer requirement where there is none, CSV where CSV goes
    transform: ({ schema, url, route }) => {
      const out = { ...(schema as Record<string, unknown>) };
      if (isPublic(`${route.method} ${url}`, config)) out.security = [];
      return { schema: out as typeof schema, url };
    },
    transformObject: (doc) => {
      const openapi = (doc as { openapiObject: OpenApiDoc }).openapiObject;
      for (const [path, method, body, status, answer] of CSV_ROUTES) {
        const op = openapi.paths?.[path]?.[method];
        if (!op) continue;
        op.requestBody = { required: true, content: { 'text/csv': { schema: { type: 'string', description: body } } } };
        op.responses = { ...op.responses, [status]: { description: answer, content: { 'text/csv': { schema: { type: 'string', description: answer } } } } };
      }
      return openapi;
    },
  });
  // the browsable API map at /docs, under the same rule as its document (http.docsPublic, docs/security.md): admins
  // only unless public. Authorize keeps the token in the page so "Try it out" sends it.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { persistAuthorization: true, deepLinking: true, displayRequestDuration: true },
    uiHooks: { onRequest: publicOrAdmin(app, config.http.docsPublic, '/docs (http.docsPublic is false)') },
  });
  // login throttling only (server/plugins/login-throttle.ts): global off, so neither the alarm stream nor any other
  // route is ever rate-limited by it; bounded in-memory store
  await app.register(rateLimit, { global: false, cache: 20_000 });
  // 2. our plugins
  installErrorHandler(app as unknown as FastifyInstance);
  // the API's turns and each user's budget (server/plugins/api-admission.ts): before the routes' own hooks and the
  // cluster lock below, so a request waits for its turn holding nothing
  apiAdmission(app as unknown as FastifyInstance, config.http, deps.metrics);
  await app.register(authPlugin, { users: deps.users });
  // issue 14: HTTP + WebSocket sockets capped below the descriptor limit; idle ones make room (server/connection-cap.ts)
  capConnections(app.server, deriveConnectionCaps(connectionCapSettings(config)).http, deps.metrics, deps.log.child({ module: 'http' }));
  // Nagle's algorithm adds ~40 ms to p99 (docs/design.md §7): every HTTP/WebSocket socket gets noDelay
  app.server.on('connection', (socket: { setNoDelay?: (v: boolean) => void }) => socket.setNoDelay?.(true));
  app.server.on('secureConnection', (socket: { setNoDelay?: (v: boolean) => void }) => socket.setNoDelay?.(true));
  // HTTP request metrics by route *pattern* (never the raw URL: ids would make one series per device)
  app.addHook('onResponse', async (req, reply) => {
    const route = req.routeOptions.url ?? 'unmatched';
    deps.metrics.httpDuration.observe({ method: req.method, route, status_code: String(reply.statusCode) }, reply.elapsedTime / 1000);
  });
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 400 || req.method !== 'GET') {
      req.log.info({ method: req.method, url: req.url.split('?')[0], status: reply.statusCode, user: req.user?.username, ms: Math.round(reply.elapsedTime) }, 'request');
    }
  });

  // cluster mode on PostgreSQL: a request that changes the registry, the network or the accounts holds the cluster's
  // lock from before its handler until its changes are in PostgreSQL, and only then is answered (core/shared-tables.ts)
  if (deps.shared) shareChanges(app as unknown as FastifyInstance, deps.shared, deps.log);

  // 3. routes
  await app.register(healthRoutes, { deps });
  await app.register(authRoutes, { deps });
  await app.register(deviceRoutes, { deps });
  await app.register(residentRoutes, { deps });
  await app.register(observationRoutes, { deps });
  for (const r of extra) await app.register(r.plugin, { deps });

  return app as unknown as FastifyInstance;
}

/**
 * The requests that change the shared tables (core/shared-tables.ts): every change to devices, residents, units, staff
 * and accounts, and a user's own logout and password change. Not incidents (the alarm path never waits for an admin's
 * import), nor commands to a device or clearing its flags (the writer's, in PostgreSQL already).
 */
export function changesSharedTables(method: string, route: string | undefined): boolean {
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS' || !route) return false;
  if (route === '/api/auth/logout' || route === '/api/auth/password') return true;
  if (/\/(commands|clear-flags)$/.test(route)) return false;
  return /^\/api\/(devices|residents|users|units|staff)(\/|$)/.test(route);
}

function shareChanges(app: FastifyInstance, shared: Pick<SharedTables, 'begin'>, log: Logger): void {
  const sessions = new WeakMap<object, SharedSession>();
  const end = async (req: object): Promise<void> => {
    const s = sessions.get(req);
    if (!s) return;
    sessions.delete(req);
    await s.end();
  };
  // after authentication and validation (a refused request takes no lock)
  app.addHook('preHandler', async (req) => {
    if (changesSharedTables(req.method, req.routeOptions.url)) sessions.set(req, await shared.begin());
  });
  // before the answer goes out (an import's CSV of secrets too): a failed push answers 503 instead, and was undone
  app.addHook('onSend', async (req, _reply, payload) => {
    await end(req);
    return payload;
  });
  // a client that leaves does not end the session: its handler goes on (Fastify runs it to the end) and its answer's
  // onSend ends it; onResponse is the net for an answer that went out without onSend (never seen), and a handler that
  // never answers is refused after the session's time limit (core/shared-tables.ts)
  app.addHook('onResponse', async (req) => end(req).catch((err: unknown) => log.warn({ err }, 'a change could not be stored in the shared database; it was undone')));
}
