// What the HTTP API may take of the main thread, which also reads every device's socket (issue 10: "reads for the API
// must not block the alarm path either"). Measured before this (`npm run bench:api-flood`, bench/analysis.md): one
// logged-in script with 64 requests at once for `GET /api/devices?limit=200` held an SOS's PUBACK up to ~0.6 s, and
// one asking for `/api/units` as fast as it could held it up to ~0.1 s. Three bounds, none on the alarm path
// (MQTT, field adapters, the WebSocket stream):
//
//  1. Turns (all users together): at most http.apiConcurrency reads are being handled at once; the rest wait
//     their turn in arrival order, up to http.apiQueue waiting, beyond which a request is refused at once (503
//     BUSY). Actions and changes take no turn: an operator's acknowledgement never waits behind a page of the fleet
//     (they have the per-user budget below, and imports their own slices). A list over the whole fleet gives its turn
//     back and waits on its own limiter (server/routes/devices.ts), being mostly a wait for the writer thread.
//     A request's turn begins after its token and input are checked and ends when its answer is produced, so
//     the work queued on the main thread (and the reads it posts to the writer thread, whose port is one queue with
//     the alarms) is a few requests' worth, not every request the sockets carry: an SOS read meanwhile waits for a
//     few of them, not for all. An answer sent slowly to a slow client holds no turn.
//  2. A budget per user (@fastify/rate-limit's bounded store, one-second windows): http.apiReadsPerUserPerS reads
//     (GET) and http.apiWritesPerUserPerS other requests. Reads and actions are counted apart, so a console whose page
//     is reading a lot never loses an operator's acknowledgement to it. Over the budget, the refusal (429, Retry-After)
//     is answered when the window ends, not at once: a script that loops on its answers is slowed to the budget
//     instead of being refused thousands of times a second (each refusal costs the main thread too).
//  3. Rows a second per user (http.apiRowsPerUserPerS, a token bucket): a page costs in proportion to its rows, which
//     a count of requests does not see. A page over it waits for its rows (paced, like a device over its publish
//     rate), and is refused (429) only if it would wait more than ROWS_WAIT_MAX_MS. Then rows a second for all users
//     together (http.apiRowsPerS), the same way: many users at once are bounded in sum, not only each.
//
// A person at a console sends a few requests a second; a page load, about ten at once.
import type { FastifyInstance, FastifyRequest } from 'fastify';
import pLimit from 'p-limit';
import { TokenBucket } from 'limiter';
import type { Config } from '../../core/config.js';
import { EldergateError, TooManyRequestsError } from '../../core/errors.js';
import type { Metrics } from '../../core/metrics.js';

const WINDOW_MS = 1000;
const SESSION_ROUTES = new Set(['/api/auth/renew', '/api/auth/logout']);
/** users whose rows' bucket is kept (insertion order: the oldest is forgotten first) */
const ROW_BUCKETS_MAX = 20_000;
/** a page that would wait longer than this for its rows is refused (429) instead */
const ROWS_WAIT_MAX_MS = 5000;

const isRead = (req: FastifyRequest) => req.method === 'GET' || req.method === 'HEAD';

/** The rows a read asks for: its `limit` (or the route's default for it); 0 for a route that pages nothing. */
function rowsAsked(req: FastifyRequest): number {
  const limit = (req.routeOptions.schema?.querystring as { properties?: { limit?: { default?: number } } } | undefined)?.properties?.limit;
  if (!limit) return 0;
  const given = Number((req.query as { limit?: unknown } | undefined)?.limit);
  return Number.isFinite(given) && given >= 1 ? Math.floor(given) : (limit.default ?? 1);
}

declare module 'fastify' {
  interface FastifyInstance {
    /** the per-user budget of an authenticated request (called by `authenticate` once req.user is known) */
    apiBudget(req: FastifyRequest): Promise<void>;
    /** a handler that waits on a limiter of its own (lists over the whole fleet) gives its turn back first */
    leaveTurn(req: FastifyRequest): Promise<void>;
  }
}

export function apiAdmission(app: FastifyInstance, cfg: Config['http'], metrics: Metrics): void {
  // 1. turns
  const turns = pLimit(cfg.apiConcurrency);
  const held = new WeakMap<FastifyRequest, () => void>();
  const free = async (req: FastifyRequest) => {
    const release = held.get(req);
    if (release) {
      held.delete(req);
      release();
    }
  };
  app.decorate('leaveTurn', free);
  app.addHook('preHandler', async (req) => {
    // reads only: an action (an acknowledgement, a dispatch) never waits behind a page of the fleet, nor an import
    if (!req.url.startsWith('/api/') || !isRead(req)) return;
    // (a 503 is answered with Retry-After by the error handler)
    if (turns.pendingCount >= cfg.apiQueue) {
      metrics.apiRefused.inc({ reason: 'busy' });
      throw new EldergateError('BUSY', `the server has ${turns.activeCount + turns.pendingCount} API requests in hand: try again in a few seconds`, { status: 503 });
    }
    await new Promise<void>((admitted) => {
      void turns(() => new Promise<void>((release) => {
        held.set(req, release);
        admitted();
      }));
    });
    // The turn passes from one request to the next inside the turn that ends it: often a reply from the writer thread,
    // and Node delivers a port's messages in one loop that takes the ones arriving meanwhile too. The writer answers
    // the next request's read while this thread is still in that loop, and so on: measured, requests taking turns one
    // at a time held the main thread 50-200 ms at a stretch. Each request begins in a turn of the event loop of its
    // own (setImmediate: after the sockets are read), so a device's socket waits for one request at most.
    await new Promise((next) => setImmediate(next));
    // gone while it waited: its turn is given back at once and its handler never runs (the answer goes nowhere)
    if (req.socket?.destroyed === true) {
      await free(req);
      throw new EldergateError('GONE', 'the client closed its connection while the request waited for its turn', { status: 503 });
    }
  });
  app.addHook('onSend', async (req, _reply, payload) => {
    await free(req);
    return payload;
  });
  app.addHook('onResponse', free);
  app.addHook('onRequestAbort', free);

  // 2. a budget per user
  const reads = app.createRateLimit({ max: cfg.apiReadsPerUserPerS, timeWindow: WINDOW_MS, keyGenerator: (req) => `r:${req.user.id}` });
  const writes = app.createRateLimit({ max: cfg.apiWritesPerUserPerS, timeWindow: WINDOW_MS, keyGenerator: (req) => `w:${req.user.id}` });
  // 3. the rows a user's pages ask for, paced: a page costs the main thread in proportion to its rows (~15-35 µs a
  // device row), which a count of requests does not see. Over the budget a page waits for it (like a device over its
  // publish rate), so a console paging through 10,000 open incidents is slowed, never refused. Then the rows of all
  // users together (http.apiRowsPerS), shared out fairly: many users' pages at once take no more of the main thread
  // than that, and a user with one page waiting goes before the rest of a script's. A page whose two waits would add
  // up to more than ROWS_WAIT_MAX_MS is refused (429) before it takes anything from either.
  const rowBuckets = new Map<string, RowPacer>();
  const allRows = new FairRows(cfg.apiRowsPerS);
  const rowsOf = (userId: string) => {
    let b = rowBuckets.get(userId);
    if (!b) {
      b = new RowPacer(cfg.apiRowsPerUserPerS);
      rowBuckets.set(userId, b);
      if (rowBuckets.size > ROW_BUCKETS_MAX) rowBuckets.delete(rowBuckets.keys().next().value!);
    }
    return b;
  };
  const paceRows = async (req: FastifyRequest) => {
    const asked = rowsAsked(req);
    if (asked === 0) return;
    const user = req.user;
    const mine = rowsOf(user.id);
    const myWaitMs = mine.waitMs(asked);
    const allWaitMs = allRows.waitMs(user.id, asked);
    if (myWaitMs + allWaitMs > ROWS_WAIT_MAX_MS) {
      const s = Math.ceil((myWaitMs + allWaitMs) / 1000);
      // whichever budget the wait is mostly for
      if (myWaitMs >= allWaitMs) {
        metrics.apiRefused.inc({ reason: 'user-rows' });
        throw new TooManyRequestsError(
          `${user.username}'s pages ask for more than ${cfg.apiRowsPerUserPerS} rows a second and this one would wait ${s} s: ask for fewer or smaller pages, or try again then`,
          s,
        );
      }
      metrics.apiRefused.inc({ reason: 'rows' });
      throw new TooManyRequestsError(
        `all users' pages together ask for more than ${cfg.apiRowsPerS} rows a second (this user's share is the rest's) and this one would wait ${s} s: try again then, or ask for smaller pages (an administrator can raise http.apiRowsPerS)`,
        s,
      );
    }
    if (myWaitMs > 0) metrics.apiPaced.inc({ budget: 'user' });
    await mine.take(asked);
    const gone = () => req.socket?.destroyed === true;
    const wait = allRows.take(user.id, asked, gone);
    if (wait) {
      metrics.apiPaced.inc({ budget: 'all' });
      if (!(await wait)) throw new EldergateError('GONE', 'the client closed its connection while the page waited for its rows', { status: 503 });
    }
  };

  app.decorate('apiBudget', async (req: FastifyRequest) => {
    // ending or renewing one's session is never refused: a console must not lose its operator's session for its pages
    if (SESSION_ROUTES.has(req.routeOptions.url ?? '')) return;
    const read = isRead(req);
    const r = await (read ? reads : writes)(req);
    // (isAllowed means "on the allow list", which these have none of: isExceeded is the verdict)
    if (r.isAllowed || !r.isExceeded) {
      if (read) await paceRows(req);
      return;
    }
    metrics.apiRefused.inc({ reason: read ? 'user-reads' : 'user-writes' });
    const waitMs = Math.min(Math.max(r.ttl, 0), WINDOW_MS);
    await new Promise((done) => setTimeout(done, waitMs).unref());
    const max = read ? cfg.apiReadsPerUserPerS : cfg.apiWritesPerUserPerS;
    throw new TooManyRequestsError(
      `more than ${max} ${read ? 'reads' : 'requests that change something'} a second from ${req.user.username}: slow down (this answer was held until the second ended); a script reading the whole fleet should page through it at this rate, and a bulk change has its own route (a CSV import)`,
      1,
    );
  });
}

/**
 * One user's rows a second, as a token bucket (limiter's, which the MQTT pacing uses too): a page within the budget
 * goes at once; one over it waits for its rows behind those already waiting (none goes past them).
 */
class RowPacer {
  private readonly bucket: TokenBucket;
  private queued = 0;

  constructor(private readonly perS: number) {
    this.bucket = new TokenBucket({ bucketSize: perS, tokensPerInterval: perS, interval: WINDOW_MS });
    this.bucket.content = perS; // (limiter's buckets start empty: the first second is a full one)
  }

  /** how long a page of `asked` rows would wait now (0: at once) */
  waitMs(asked: number): number {
    const rows = Math.min(asked, this.perS);
    this.bucket.drip();
    if (this.queued === 0 && this.bucket.content >= rows) return 0;
    return Math.ceil(((this.queued + rows - this.bucket.content) * WINDOW_MS) / this.perS);
  }

  async take(asked: number): Promise<void> {
    const rows = Math.min(asked, this.perS);
    if (this.queued === 0 && this.bucket.tryRemoveTokens(rows)) return;
    this.queued += rows;
    try {
      await this.bucket.removeTokens(rows);
    } finally {
      this.queued -= rows;
    }
  }
}

interface RowsWaiter {
  rows: number;
  gone: () => boolean;
  done: (served: boolean) => void;
}

/**
 * All users' rows a second, shared out page by page in turn between the users with pages waiting (round robin): a
 * script with a hundred pages queued delays another user's page by one of its pages, not by all of them. A page
 * whose client has gone when its turn comes is dropped and takes nothing. Written here: the rate limiters on npm
 * (limiter, @fastify/rate-limit, bottleneck) budget each key apart or queue all keys in one line; none shares one
 * budget fairly between keys.
 */
class FairRows {
  /** the budget itself, limiter's bucket as for one user; what this class adds is whose page takes from it next */
  private readonly bucket: TokenBucket;
  /** the users with pages waiting, in turn order (a user served goes to the end), each with her pages in order */
  private readonly waiting = new Map<string, RowsWaiter[]>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly perS: number) {
    this.bucket = new TokenBucket({ bucketSize: perS, tokensPerInterval: perS, interval: WINDOW_MS });
    this.bucket.content = perS;
  }

  /**
   * How long a page of `asked` rows would wait now (0: at once): this user's pages already waiting and this one, at
   * her share of the budget (the budget over the users with pages waiting, her included).
   */
  waitMs(userId: string, asked: number): number {
    const rows = Math.min(asked, this.perS);
    this.bucket.drip();
    if (this.waiting.size === 0 && this.bucket.content >= rows) return 0;
    const mine = this.waiting.get(userId);
    let queued = rows;
    for (const w of mine ?? []) queued += w.rows;
    const users = this.waiting.size + (mine ? 0 : 1);
    return Math.ceil((Math.max(0, queued - this.bucket.content) * WINDOW_MS * users) / this.perS);
  }

  /** undefined: taken at once; else a promise of whether it was served (false: its client had gone) */
  take(userId: string, asked: number, gone: () => boolean): Promise<boolean> | undefined {
    const rows = Math.min(asked, this.perS);
    if (this.waiting.size === 0 && this.bucket.tryRemoveTokens(rows)) return undefined;
    return new Promise<boolean>((done) => {
      const mine = this.waiting.get(userId);
      if (mine) mine.push({ rows, gone, done });
      else this.waiting.set(userId, [{ rows, gone, done }]);
      this.serve();
    });
  }

  private serve(): void {
    if (this.timer) return;
    for (const [userId, pages] of this.waiting) {
      const page = pages[0]!;
      const served = !page.gone();
      if (served && !this.bucket.tryRemoveTokens(page.rows)) {
        // (tryRemoveTokens dripped the bucket first: its content is now's)
        this.timer = setTimeout(() => {
          this.timer = undefined;
          this.serve();
        }, Math.ceil(((page.rows - this.bucket.content) * WINDOW_MS) / this.perS));
        return;
      }
      pages.shift();
      // her turn is over: to the end of the line if she has more, out of it if not
      this.waiting.delete(userId);
      if (pages.length) this.waiting.set(userId, pages);
      page.done(served);
    }
  }
}
