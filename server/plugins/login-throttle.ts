// Login throttling (issue 14), on @fastify/rate-limit's bounded in-memory store. Three buckets, only on
// POST /api/auth/login — never on the alarm path (MQTT, field adapters), the WebSocket or session renewal:
//
//  1. per address, every attempt (auth.loginAttemptsPerAddress a minute), checked before the body is parsed or a
//     password hashed: one address cannot spray passwords over many accounts nor keep scrypt busy;
//  2. per (account, address), failures only (auth.loginFailuresPerAccountAddress per auth.loginFailureWindowS): the
//     classic guessing loop stops after a few tries, and only for that address;
//  3. per account, failures from every address together (auth.loginFailuresPerAccount per window): an attacker who
//     rotates addresses against one username is slowed too. This is the bucket that could lock the real operator
//     out at 3 a.m., so it does not apply to an address this account has logged in from before (remembered for
//     30 days, in memory, bounded): the operator's own console keeps working while the attack goes on; only
//     never-seen addresses wait. Her own address is still bound by bucket 2, so it gains an attacker nothing.
//
// A refusal is 429 with Retry-After (seconds) and a message saying how long and what else to do. Counting failures
// only (2, 3) means a successful login never uses up the allowance of a shift change at a shared console.
import type { FastifyInstance, FastifyRequest, onRequestHookHandler, preHandlerHookHandler } from 'fastify';
import { normalizeIP } from '@fastify/rate-limit';
import type { Config } from '../../core/config.js';
import { TooManyRequestsError } from '../../core/errors.js';

const KNOWN_FOR_MS = 30 * 24 * 3600_000;
const KNOWN_MAX = 20_000;

/** (account, address) pairs that logged in successfully: insertion-ordered Map as a bounded LRU. */
class KnownAddresses {
  private readonly seen = new Map<string, number>();
  add(key: string): void {
    this.seen.delete(key);
    this.seen.set(key, Date.now());
    if (this.seen.size > KNOWN_MAX) this.seen.delete(this.seen.keys().next().value!);
  }
  has(key: string): boolean {
    const at = this.seen.get(key);
    return at !== undefined && Date.now() - at < KNOWN_FOR_MS;
  }
}

export interface LoginThrottle {
  /** onRequest: every attempt from the address counts */
  perAddress: onRequestHookHandler;
  /** preHandler: refuses an (account, address) or account whose failures are used up */
  beforeLogin: preHandlerHookHandler;
  failed(req: FastifyRequest): Promise<void>;
  succeeded(req: FastifyRequest): void;
}

const address = (req: FastifyRequest) => normalizeIP(req.ip, 64);
/** usernames compare case-insensitively here, so case variants share one bucket */
const account = (req: FastifyRequest) => String((req.body as { username?: unknown } | undefined)?.username ?? '').toLowerCase().slice(0, 64);

export function loginThrottle(app: FastifyInstance, cfg: Config['auth']): LoginThrottle {
  const windowMs = cfg.loginFailureWindowS * 1000;
  const known = new KnownAddresses();
  const pairKey = (req: FastifyRequest) => `pair:${account(req)}|${address(req)}`;

  const perAddress = app.rateLimit({
    max: cfg.loginAttemptsPerAddress,
    timeWindow: 60_000,
    keyGenerator: (req) => `addr:${address(req)}`,
    errorResponseBuilder: (_req, ctx) =>
      new TooManyRequestsError(`too many login attempts from this address: wait ${ctx.after} and try again`, Math.ceil(ctx.ttl / 1000)),
  });
  const pair = app.createRateLimit({ max: cfg.loginFailuresPerAccountAddress, timeWindow: windowMs, keyGenerator: pairKey });
  const acct = app.createRateLimit({
    max: cfg.loginFailuresPerAccount,
    timeWindow: windowMs,
    keyGenerator: (req) => `acct:${account(req)}`,
    allowList: (req) => known.has(pairKey(req)),
  });

  const refuse = (ttlMs: number, message: (wait: string) => string) => {
    const s = Math.max(1, Math.ceil(ttlMs / 1000));
    const wait = s >= 120 ? `${Math.ceil(s / 60)} minutes` : `${s} seconds`;
    throw new TooManyRequestsError(message(wait), s);
  };

  return {
    perAddress,
    async beforeLogin(req) {
      const p = await pair(req, { increment: false });
      if (!p.isAllowed && p.remaining === 0) {
        refuse(p.ttl, (w) => `too many failed logins for this account from this address: wait ${w}, or ask an admin to reset the password`);
      }
      const a = await acct(req, { increment: false });
      if (!a.isAllowed && a.remaining === 0) {
        refuse(a.ttl, (w) => `too many failed logins for this account from many addresses: wait ${w}, log in from a console this account used before, or ask an admin`);
      }
    },
    async failed(req) {
      await pair(req);
      await acct(req);
    },
    succeeded(req) {
      known.add(pairKey(req));
    },
  };
}
