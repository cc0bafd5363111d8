// The operator console, served by the gateway itself at `/`. The TypeScript under web/ is bundled by esbuild when
// the server starts, into memory: `npm start` on a fresh clone serves it with no build step, nothing comes from a
// CDN, and the page works on a network without internet. Register through buildApp's `extra` routes:
// `{ name: 'console', plugin: consoleRoutes() }`.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import { build } from 'esbuild';
import type { AppDeps } from '../deps.js';
import { requireRole } from '../plugins/auth.js';

// The sources next to this file (tsx, tests); from a tsc build in dist/, the sources of the checkout.
const HERE = dirname(fileURLToPath(import.meta.url));
// Leaflet's marker images, served from here (never a CDN): its stylesheet (in style.css) finds them in images/
const LEAFLET = dirname(createRequire(import.meta.url).resolve('leaflet/dist/leaflet.css'));
const LEAFLET_IMAGES = ['marker-icon.png', 'marker-icon-2x.png', 'marker-shadow.png', 'layers.png', 'layers-2x.png'];
const WEB = [join(HERE, 'web'), join(HERE, '../../../server/console/web')].find((d) => existsSync(join(d, 'main.ts'))) ?? join(HERE, 'web');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const asset = (body: string | Buffer, type: string): Asset => {
  const buf = Buffer.isBuffer(body) ? body : Buffer.from(body, 'utf8');
  return { body: buf, type, etag: `"${createHash('sha256').update(buf).digest('base64url').slice(0, 22)}"` };
};

/** Bundle the console. Exported for tests and for a build step that wants the files on disk. */
export async function bundleConsole(opts: { minify?: boolean } = {}): Promise<Record<string, Asset>> {
  const out = await build({
    entryPoints: [join(WEB, 'main.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: ['chrome100', 'firefox100', 'safari15'],
    minify: opts.minify ?? true,
    sourcemap: false,
    legalComments: 'none',
    logLevel: 'silent',
  });
  const js = out.outputFiles[0]!.text;
  return {
    '/': asset(readFileSync(join(WEB, 'index.html')), 'text/html; charset=utf-8'),
    '/console/app.js': asset(js, 'text/javascript; charset=utf-8'),
    '/console/style.css': asset(libraryCss() + readFileSync(join(WEB, 'style.css'), 'utf8'), 'text/css; charset=utf-8'),
    '/console/icon.svg': asset(readFileSync(join(WEB, 'icon.svg')), 'image/svg+xml'),
    ...Object.fromEntries(LEAFLET_IMAGES.map((f) => [`/console/images/${f}`, asset(readFileSync(join(LEAFLET, 'images', f)), 'image/png')])),
  };
}

/** Stylesheets of the libraries the console bundles (uPlot: the KPI chart; Leaflet: the map), served inside /console/style.css before ours. */
const LIBRARY_CSS = ['uplot/dist/uPlot.min.css', 'leaflet/dist/leaflet.css'];
const libraryCss = (): string => {
  const require = createRequire(import.meta.url);
  return LIBRARY_CSS.map((p) => `/* ${p} */\n${readFileSync(require.resolve(p), 'utf8')}\n`).join('');
};

const HOST_PATTERN = /^[A-Za-z0-9.\-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

/**
 * Only our own scripts, styles and the alarm stream; nothing may frame the console (clickjacking an acknowledge).
 * `tileOrigin`: the one origin map tiles come from (console.tileUrl), added to img-src and to nothing else.
 */
function securityHeaders(req: FastifyRequest, reply: FastifyReply, tileOrigin: string | null): void {
  const host = req.headers.host && HOST_PATTERN.test(req.headers.host) ? req.headers.host : null;
  const ws = host ? ` ws://${host} wss://${host}` : '';
  reply
    .header('content-security-policy',
      `default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:${tileOrigin ? ` ${tileOrigin}` : ''}; connect-src 'self'${ws}; ` +
      "base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    .header('x-frame-options', 'DENY');
}

/**
 * The sources do not change while the process runs, so a process bundles them once: the gateway starts once per
 * process in production, but the test suite starts ~150 gateways in a few processes, and esbuild took ~0.3 s of CPU
 * at each.
 */
let bundled: Promise<Record<string, Asset>> | undefined;

export function consoleRoutes(): FastifyPluginAsync<{ deps: AppDeps }> {
  return async (app, { deps }) => {
    const log = deps.log.child({ module: 'console' });
    const started = Date.now();
    let assets: Record<string, Asset> | null = null;
    let failure: string | null = null;
    try {
      assets = await (bundled ??= bundleConsole().catch((err: unknown) => {
        bundled = undefined; // a failed build is tried again at the next start, not remembered
        throw err;
      }));
      log.info({ ms: Date.now() - started, bytes: assets['/console/app.js']!.body.length }, 'console bundled');
    } catch (err) {
      // the alarm path must not depend on the console building: start anyway, and say what is wrong on the page
      failure = (err as Error).message;
      log.error({ err }, 'the console could not be bundled; the API and the alarm stream still work');
    }

    // validated by loadConfig (core/config.ts tileUrlProblem): an http(s) URL with a literal host
    const tiles = deps.config.console?.tileUrl;
    const tileOrigin = tiles ? new URL(tiles.replace(/\{[zxy]\}/g, '0')).origin : null;
    const paths = ['/', '/console/app.js', '/console/style.css', '/console/icon.svg', ...LEAFLET_IMAGES.map((f) => `/console/images/${f}`)];
    for (const path of paths) {
      app.get(path, { schema: { hide: true } }, async (req, reply) => {
        securityHeaders(req, reply, tileOrigin);
        if (!assets) {
          return reply.status(503).type('text/plain; charset=utf-8')
            .send(`The console could not be built at start-up (the API and alarm stream work): ${failure}`);
        }
        const a = assets[path]!;
        // the HTML always revalidates, so a new gateway version is picked up at the next load
        reply.header('etag', a.etag).header('cache-control', path === '/' ? 'no-cache' : 'no-cache, max-age=0');
        if (req.headers['if-none-match'] === a.etag) return reply.status(304).send();
        return reply.type(a.type).send(a.body);
      });
    }

    // what the console needs to draw budgets; everything else comes from the API
    app.get('/api/console/settings', {
      schema: { tags: ['console'], summary: 'Budgets and stream settings for the console' },
      onRequest: requireRole(app, 'admin', 'operator', 'steward', 'technician'),
    }, async () => ({
      budgets: deps.config.budgets,
      stream: { pingIntervalMs: deps.config.http.wsPingIntervalMs, maxPayloadBytes: deps.config.http.wsMaxPayloadBytes },
      // null: no tiles configured, the console draws its schematic plot
      map: tiles ? { tileUrl: tiles, attribution: deps.config.console.tileAttribution, maxZoom: deps.config.console.tileMaxZoom } : null,
    }));
  };
}
