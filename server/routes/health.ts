import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppDeps } from '../deps.js';

export const healthRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is alive' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { tags: ['health'], summary: 'The gateway accepts devices and consoles' } }, async (_req, reply) => {
    if (!deps.ready()) return reply.status(503).send({ status: 'starting' });
    deps.store.sqlite.prepare('select 1').get();
    return { status: 'ready' };
  });
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics' } }, async (_req, reply) => {
    deps.refreshMetrics();
    reply.header('content-type', deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
};
