// The HTTP server. Load order is visible here and matters for security: external plugins → our plugins (errors,
// auth) → routes. Fastify uses the gateway's own pino instance.
import { readFileSync } from 'node:fs';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyPluginAsync } from 'fastify';
import swagger from '@fastify/swagger';
import rateLimit from '@fastify/rate-limit';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { AppDeps } from './deps.js';
import { installErrorHandler } from './plugins/errors.js';
import { authPlugin, publicOrAdmin } from './plugins/auth.js';
import { authRoutes } from './routes/auth.js';
import { deviceRoutes } from './routes/devices.js';
import { residentRoutes } from './routes/residents.js';
import { observationRoutes } from './routes/observations.js';
import { healthRoutes } from './routes/health.js';
import { capConnections } from './connection-cap.js';
import { connectionCapSettings, deriveConnectionCaps } from '../core/limits.js';

/** Route plugins contributed by other parts (incidents, network, WebSocket, console), registered after ours. */
export type ExtraRoutes = { name: string; plugin: FastifyPluginAsync<{ deps: AppDeps }> }[];

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
  }).withTypeProvider<TypeBoxTypeProvider>();

  // 1. external plugins
  await app.register(swagger, {
    openapi: {
      info: { title: 'eldergate API', version: '0.1.0', description: 'Devices, residents, incidents and the response network' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  // login throttling only (server/plugins/login-throttle.ts): global off, so neither the alarm stream nor any other
  // route is ever rate-limited by it; bounded in-memory store
  await app.register(rateLimit, { global: false, cache: 20_000 });
  // 2. our plugins
  installErrorHandler(app as unknown as FastifyInstance);
  await app.register(authPlugin, { users: deps.users });
  // issue 14: HTTP + WebSocket sockets capped below the descriptor limit; idle ones make room (server/connection-cap.ts)
  capConnections(app.server, deriveConnectionCaps(connectionCapSettings(config)).http, deps.metrics, deps.log.child({ module: 'http' }));
  // Nagle's algorithm adds ~40 ms to p99 (docs/design.md §7): every HTTP/WebSocket socket gets noDelay
  app.server.on('connection', (socket: { setNoDelay?: (v: boolean) => void }) => socket.setNoDelay?.(true));
  app.server.on('secureConnection', (socket: { setNoDelay?: (v: boolean) => void }) => socket.setNoDelay?.(true));
  app.addHook('onResponse', async (req, reply) => {
    if (reply.statusCode >= 400 || req.method !== 'GET') {
      req.log.info({ method: req.method, url: req.url.split('?')[0], status: reply.statusCode, user: req.user?.username, ms: Math.round(reply.elapsedTime) }, 'request');
    }
  });

  // 3. routes
  await app.register(healthRoutes, { deps });
  await app.register(authRoutes, { deps });
  await app.register(deviceRoutes, { deps });
  await app.register(residentRoutes, { deps });
  await app.register(observationRoutes, { deps });
  for (const r of extra) await app.register(r.plugin, { deps });

  // the API's map: admins only unless http.docsPublic
  app.get('/docs/json', { schema: { hide: true }, onRequest: publicOrAdmin(app, config.http.docsPublic, '/docs/json (http.docsPublic is false)') }, async () => app.swagger());
  return app as unknown as FastifyInstance;
}
