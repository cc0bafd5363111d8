// Device secrets: ≥128-bit random, shown once, stored as a keyed hash. High entropy makes a fast keyed hash safe, so a
// reconnect storm of the whole fleet costs microseconds per device instead of a password hash's 50 ms (docs/design.md §2).
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/** 24 random bytes (192 bits) in base64url: 32 characters, safe in MQTT passwords, CSV and shells. */
export function newDeviceSecret(): string {
  return randomBytes(24).toString('base64url');
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
  const bytes = randomBytes(12);
  let s = '';
  for (const b of bytes) s += ID_ALPHABET[b % ID_ALPHABET.length];
  return `${PREFIX[kind] ?? 'dv'}-${s}`;
}

export const DEVICE_ID_RE = /^[a-z]{2}-[a-z0-9]{4,20}$/;

export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}
