import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { AppDeps } from '../deps.js';
import { publicOrAdmin } from '../plugins/auth.js';

export const healthRoutes: FastifyPluginAsyncTypebox<{ deps: AppDeps }> = async (app, { deps }) => {
  app.get('/healthz', { schema: { tags: ['health'], summary: 'The process is alive' } }, async () => ({ status: 'ok' }));
  app.get('/readyz', { schema: { tags: ['health'], summary: 'The gateway accepts devices and consoles' } }, async (_req, reply) => {
    // a writer that stopped answering: alarms are not being stored (it is being replaced)
    const stall = deps.writerStall?.();
    if (stall) {
      return reply.status(503).send({
        status: 'writer-stalled', since: new Date(stall.since).toISOString(),
        reason: 'the writer thread (which stores every alarm) has stopped answering; it is being ended and replaced',
        action: 'check the data directory\'s disk (a hung fsync); if this lasts, restart the gateway. Readiness returns once a new writer thread runs',
      });
    }
    if (!deps.ready()) return reply.status(503).send({ status: 'starting' });
    // a failing write (disk full…): devices get no acknowledgement until it passes; say why and since when
    const fault = deps.storage?.status();
    if (fault) {
      return reply.status(503).send({
        status: 'storage-failing', reason: fault.reason, since: new Date(fault.since).toISOString(),
        action: 'free disk space on the data directory or fix its file system; readiness returns by itself once a write succeeds',
      });
    }
    deps.store.sqlite.prepare('select 1').get();
    return { status: 'ready' };
  });
  // public by default (http.metricsPublic): counts and latencies, no personal data, scraped from a private network;
  // off: an admin's token or http.metricsToken (Prometheus' bearer_token)
  const metricsAuth = publicOrAdmin(app, deps.config.http.metricsPublic, '/metrics (http.metricsPublic is false)', deps.config.http.metricsToken);
  app.get('/metrics', { schema: { tags: ['health'], summary: 'Prometheus metrics' }, onRequest: metricsAuth }, async (_req, reply) => {
    deps.refreshMetrics();
    reply.header('content-type', deps.metrics.registry.contentType);
    // with the writer thread's counters summed in (gateway/writer/client.ts)
    return deps.metricsText ? deps.metricsText() : deps.metrics.registry.metrics();
  });
};
