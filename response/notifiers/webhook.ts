// Webhook notifier: HTTP POST of a JSON body, signed with HMAC-SHA256 of the exact body bytes
// (`X-Eldergate-Signature: sha256=<hex>`), with the send time both in a header and inside the signed body so a
// receiver can refuse replays. Failures, 5xx, 408/429 and timeouts are retried with exponential back-off.
// Everything runs off a bounded queue: a slow or dead endpoint never holds up ingest or escalation, and a back-off
// wait holds no sending slot.
// Before anything is sent, the target's addresses are checked (address-guard.ts: no loopback, private, link-local
// or metadata address unless the channel allows private ones), and the connection's own lookup checks again.
// Redirects are never followed; at most `maxResponseBytes` of an answer are read, and only its status code and a
// short reason reach the timeline.
import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Logger } from 'pino';
import { Agent, request, type Dispatcher } from 'undici';
import { checkTarget, guardedLookup, systemResolve, type ResolveHost } from './address-guard.js';

export const SIGNATURE_HEADER = 'x-eldergate-signature';
export const TIMESTAMP_HEADER = 'x-eldergate-timestamp';
export const DELIVERY_HEADER = 'x-eldergate-delivery';
export const EVENT_HEADER = 'x-eldergate-event';

export function signBody(secret: string, body: string | Buffer): string {
  return 'sha256=' + createHmac('sha256', secret).update(body).digest('hex');
}

/** For receivers (and tests): constant-time check of a signature header against the raw body. */
export function verifySignature(secret: string, body: string | Buffer, header: string | undefined | null): boolean {
  if (!header) return false;
  const expected = Buffer.from(signBody(secret, body));
  const got = Buffer.from(header);
  return got.length === expected.length && timingSafeEqual(got, expected);
}

/** One message to one URL; `body` gets `deliveryId`, `attempt` and `sentAt` added at each attempt. */
export interface WebhookDelivery {
  /** stable across retries, so a receiver can drop duplicates */
  id: string;
  url: string;
  event: string;
  body: Record<string, unknown>;
  /** opaque to the notifier, handed back in callbacks (incident id, target) */
  context?: Record<string, unknown>;
  /** HMAC key of this target (its channel's); else the notifier's */
  secret?: string;
  /** the target's channel may post to private addresses (loopback, RFC 1918 …); default false */
  allowPrivate?: boolean;
}

export interface WebhookAttempt {
  delivery: WebhookDelivery;
  attempt: number;
  ok: boolean;
  status?: number;
  error?: string;
  durationMs: number;
  /** no further attempt will be made (success, permanent failure, retries exhausted, closing) */
  final: boolean;
  retryInMs?: number;
}

export interface WebhookNotifierOptions {
  /** HMAC key; without one the requests go unsigned (a warning is logged once) */
  secret?: string;
  /** attempts after the first */
  retries: number;
  /** first back-off; doubled each retry */
  backoffMs: number;
  maxBackoffMs?: number;
  timeoutMs?: number;
  concurrency?: number;
  /** deliveries waiting, sending or backing off; beyond it `enqueue` refuses */
  maxQueue?: number;
  log: Logger;
  /** called for every attempt; must not throw (errors are logged) */
  onAttempt?: (a: WebhookAttempt) => void;
  now?: () => number;
  /** bytes of an answer read at most (the rest is discarded with the connection); default 16 KiB */
  maxResponseBytes?: number;
  /** host resolution for the address check and the connection (tests resolve without DNS) */
  resolve?: ResolveHost;
  /** replaces the guarded agents (tests: a connect spy); the address check before sending still runs */
  dispatcher?: Dispatcher;
}

/** Longest reason written to the timeline and the log for one attempt. */
export const MAX_REASON_CHARS = 200;
const shortReason = (s: string) => (s.length > MAX_REASON_CHARS ? s.slice(0, MAX_REASON_CHARS - 1) + '…' : s);

export interface WebhookNotifier {
  /** false when the queue is full or the notifier is closed (the caller records that it was not sent) */
  enqueue(delivery: WebhookDelivery): boolean;
  /** resolves when nothing is queued, in flight or backing off */
  idle(): Promise<void>;
  /** stop: abort requests in flight, drop what waits (each reported as a final failed attempt) */
  close(): Promise<void>;
  stats(): { queued: number; inFlight: number; backingOff: number; sent: number; failed: number; dropped: number };
}

/** A webhook URL as it may be logged and stored: no credentials, no query string (tokens live there). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    return `${u.protocol}//${u.host}${u.pathname}`;
  } catch {
    return '(invalid url)';
  }
}

const RETRYABLE_STATUS = new Set([408, 425, 429]);

interface Job {
  delivery: WebhookDelivery;
  attempt: number;
}

export function createWebhookNotifier(opts: WebhookNotifierOptions): WebhookNotifier {
  const log = opts.log.child({ module: 'notifier-webhook' });
  const now = opts.now ?? Date.now;
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const concurrency = opts.concurrency ?? 8;
  const maxQueue = opts.maxQueue ?? 10_000;
  const maxBackoffMs = opts.maxBackoffMs ?? 10 * 60_000;
  const maxResponseBytes = opts.maxResponseBytes ?? 16 * 1024;
  const resolve = opts.resolve ?? systemResolve;
  if (!opts.secret) log.warn('notifiers.webhookSecret is not set: webhooks without a channel secret are sent unsigned');
  // one pool per policy: the connection's own lookup refuses what the policy refuses (DNS rebinding)
  const agentOptions = { headersTimeout: timeoutMs, bodyTimeout: timeoutMs, maxHeaderSize: 16 * 1024, connections: concurrency };
  const agents = opts.dispatcher
    ? null
    : {
        strict: new Agent({ ...agentOptions, connect: { lookup: guardedLookup({ allowPrivate: false }, resolve) } }),
        private: new Agent({ ...agentOptions, connect: { lookup: guardedLookup({ allowPrivate: true }, resolve) } }),
      };
  const dispatcherFor = (d: WebhookDelivery): Dispatcher => opts.dispatcher ?? (d.allowPrivate ? agents!.private : agents!.strict);

  const ready: Job[] = [];
  const waiting = new Map<Job, NodeJS.Timeout>();
  const inFlight = new Map<Job, AbortController>();
  const counters = { sent: 0, failed: 0, dropped: 0 };
  let closed = false;
  let idleWaiters: (() => void)[] = [];

  const size = () => ready.length + waiting.size + inFlight.size;

  function report(a: WebhookAttempt) {
    try {
      opts.onAttempt?.(a);
    } catch (err) {
      log.error({ err, deliveryId: a.delivery.id }, 'recording a webhook attempt failed');
    }
  }

  function settleIdle() {
    if (size() > 0) return;
    const waiters = idleWaiters;
    idleWaiters = [];
    for (const w of waiters) w();
  }

  function pump() {
    while (!closed && inFlight.size < concurrency && ready.length) {
      const job = ready.shift()!;
      void send(job);
    }
    settleIdle();
  }

  async function send(job: Job) {
    const controller = new AbortController();
    inFlight.set(job, controller);
    const { delivery, attempt } = job;
    const sentAt = now();
    const body = JSON.stringify({ ...delivery.body, deliveryId: delivery.id, event: delivery.event, attempt, sentAt });
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      'user-agent': 'eldergate-webhook/1',
      [TIMESTAMP_HEADER]: String(sentAt),
      [DELIVERY_HEADER]: delivery.id,
      [EVENT_HEADER]: delivery.event,
    };
    const secret = delivery.secret ?? opts.secret;
    if (secret) headers[SIGNATURE_HEADER] = signBody(secret, body);
    const started = performance.now();
    let status: number | undefined;
    let error: string | undefined;
    let retryable = true;
    try {
      // refused targets are refused here, before any connection: nothing is sent, nothing retried
      const target = await checkTarget(delivery.url, { allowPrivate: delivery.allowPrivate === true }, resolve);
      if (!target.ok) {
        retryable = target.retryable;
        throw Object.assign(new Error(target.reason), { name: 'TargetRefused' });
      }
      const res = await request(delivery.url, {
        method: 'POST',
        headers,
        body,
        dispatcher: dispatcherFor(delivery),
        // a redirect is a misconfigured target: following it would send the alarm where nobody configured it
        maxRedirections: 0,
        signal: AbortSignal.any([controller.signal, AbortSignal.timeout(timeoutMs)]),
      });
      status = res.statusCode;
      // read at most maxResponseBytes (so the connection can be reused); the answer's content does not matter
      await res.body.dump({ limit: maxResponseBytes }).catch(() => undefined);
      if (status >= 200 && status < 300) retryable = false;
      else if (status >= 300 && status < 400) {
        error = `redirected (HTTP ${status}); configure the final URL`;
        retryable = false;
      } else if (status >= 500 || RETRYABLE_STATUS.has(status)) error = `HTTP ${status}`;
      else {
        error = `HTTP ${status} (refused by the receiver; not retried)`;
        retryable = false;
      }
    } catch (err) {
      const e = err as Error & { code?: string; cause?: { code?: string; message?: string } };
      const timedOut = e.name === 'TimeoutError' || e.code === 'UND_ERR_HEADERS_TIMEOUT' || e.code === 'UND_ERR_BODY_TIMEOUT';
      error = shortReason(
        e.name === 'TargetRefused'
          ? e.message
          : timedOut
            ? `timed out after ${timeoutMs} ms`
            : e.name === 'AbortError' || e.code === 'UND_ERR_ABORTED'
              ? (closed ? 'aborted: notifier closing' : `timed out after ${timeoutMs} ms`)
              : `${e.message}${e.code ? ` (${e.code})` : e.cause?.code ? ` (${e.cause.code})` : e.cause?.message ? ` (${e.cause.message})` : ''}`,
      );
      // the connection's lookup refused the address (the name answered differently than when checked)
      if (e.code === 'EADDRREFUSED_POLICY' || String(e.message).startsWith('refused:')) retryable = false;
      if (closed) retryable = false;
    } finally {
      inFlight.delete(job);
    }
    const durationMs = Math.round(performance.now() - started);
    const ok = error === undefined;
    if (ok) {
      counters.sent++;
      report({ delivery, attempt, ok, status: status!, durationMs, final: true });
    } else if (retryable && attempt <= opts.retries && !closed) {
      const base = Math.min(opts.backoffMs * 2 ** (attempt - 1), maxBackoffMs);
      // a little jitter so that many webhooks failing together do not retry in lockstep
      const retryInMs = Math.round(base * (1 + Math.random() * 0.1));
      report({ delivery, attempt, ok, ...(status !== undefined ? { status } : {}), error, durationMs, final: false, retryInMs });
      const next: Job = { delivery, attempt: attempt + 1 };
      const timer = setTimeout(() => {
        waiting.delete(next);
        if (closed) return;
        ready.push(next);
        pump();
      }, retryInMs);
      timer.unref?.();
      waiting.set(next, timer);
    } else {
      counters.failed++;
      log.warn({ deliveryId: delivery.id, url: redactUrl(delivery.url), attempt, status, error }, 'webhook not delivered');
      report({ delivery, attempt, ok, ...(status !== undefined ? { status } : {}), error, durationMs, final: true });
    }
    pump();
  }

  return {
    enqueue(delivery) {
      if (closed || size() >= maxQueue) {
        counters.dropped++;
        log.error({ deliveryId: delivery.id, url: redactUrl(delivery.url), queued: size(), closed }, 'webhook queue full: not sent');
        return false;
      }
      ready.push({ delivery, attempt: 1 });
      // start on a later tick: the caller may be inside a bus listener or a transaction
      setImmediate(pump);
      return true;
    },
    idle() {
      if (size() === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    async close() {
      closed = true;
      for (const [job, timer] of waiting) {
        clearTimeout(timer);
        report({ delivery: job.delivery, attempt: job.attempt, ok: false, error: 'not sent: notifier closed', durationMs: 0, final: true });
      }
      waiting.clear();
      for (const job of ready.splice(0)) {
        report({ delivery: job.delivery, attempt: job.attempt, ok: false, error: 'not sent: notifier closed', durationMs: 0, final: true });
      }
      for (const c of inFlight.values()) c.abort();
      // in-flight sends finish (aborted) on their own; wait for them so nothing writes after close
      const deadline = Date.now() + 2000;
      while (inFlight.size && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      if (agents) await Promise.all([agents.strict.destroy(), agents.private.destroy()]).catch(() => undefined);
      settleIdle();
    },
    stats: () => ({
      queued: ready.length, inFlight: inFlight.size, backingOff: waiting.size, ...counters,
    }),
  };
}
