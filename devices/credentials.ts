// Device secrets: ≥128-bit random, shown once, stored as a keyed hash. High entropy makes a fast keyed hash safe, so a
// reconnect storm of the whole fleet costs microseconds per device instead of a password hash's 50 ms (docs/design.md §2).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * Random bytes from a pool filled 4 KiB at a time (as node's randomUUID keeps its own): a 50,000-device import asks
 * for 100,000 small pieces, and each randomBytes() call is a job of its own, a third of the import's secret step. Each
 * byte is handed out once, and only as a copy (the callers below turn it into a string); the pool stays here.
 */
const POOL_BYTES = 4096;
let pool = Buffer.alloc(0);
let poolAt = 0;
function random(n: number): Buffer {
  if (poolAt + n > pool.length) {
    pool = randomBytes(POOL_BYTES);
    poolAt = 0;
  }
  const out = pool.subarray(poolAt, poolAt + n);
  poolAt += n;
  return out;
}

/** 24 random bytes (192 bits) in base64url: 32 characters, safe in MQTT passwords, CSV and shells. */
export function newDeviceSecret(): string {
  return random(24).toString('base64url');
}

export class SecretHasher {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error('device secret key must be at least 256 bits');
  }

  hash(secret: string): string {
    return createHmac('sha256', this.key).update(secret).digest('base64url');
  }

  verify(secret: string | Buffer | undefined, stored: string): boolean {
    if (secret === undefined) return false;
    const s = typeof secret === 'string' ? secret : secret.toString('utf8');
    if (s.length < 16 || s.length > 128) return false;
    const a = Buffer.from(this.hash(s));
    const b = Buffer.from(stored);
    return a.length === b.length && timingSafeEqual(a, b);
  }
}

const ID_ALPHABET = 'abcdefghjkmnpqrstuvwxyz23456789';
const PREFIX: Record<string, string> = {
  'call-phone': 'cp',
  'fall-sensor': 'fs',
  locator: 'lc',
  modbus: 'mb',
  receiver: 'rx',
};

/** Device ids are short, unambiguous and MQTT-safe (≤ 23 characters, MQTT 3.1.1 [MQTT-3.1.3-5]). */
export function newDeviceId(kind: string): string {
  const bytes = random(12);
  let s = '';
  for (const b of bytes) s += ID_ALPHABET[b % ID_ALPHABET.length];
  return `${PREFIX[kind] ?? 'dv'}-${s}`;
}

export const DEVICE_ID_RE = /^[a-z]{2}-[a-z0-9]{4,20}$/;

export function newId(prefix: string): string {
  return `${prefix}_${random(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}
