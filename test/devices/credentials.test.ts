// Device secrets and ids come from a pool of random bytes filled 4 KiB at a time (devices/credentials.ts): every byte
// is handed out once. Shown over 20,000 secrets and ids (many pool refills): the secrets are 24 bytes each, and no
// 8-byte run of any secret appears in another or in an id; ids and other ids keep their form.
import { describe, expect, it } from 'vitest';
import { DEVICE_ID_RE, newDeviceId, newDeviceSecret, newId, SecretHasher } from '../../devices/credentials.js';

describe('device secrets and ids from the random pool', () => {
  it('hands every random byte out once', () => {
    const runs = new Map<string, number>();
    const secrets = new Set<string>();
    for (let i = 0; i < 20_000; i++) {
      const secret = newDeviceSecret();
      expect(secret).toMatch(/^[A-Za-z0-9_-]{32}$/);
      secrets.add(secret);
      const bytes = Buffer.from(secret, 'base64url');
      expect(bytes).toHaveLength(24);
      for (let at = 0; at + 8 <= bytes.length; at++) {
        const run = bytes.subarray(at, at + 8).toString('hex');
        expect(runs.get(run), `an 8-byte run of secret ${i} was handed out before`).toBeUndefined();
        runs.set(run, i);
      }
      // ids draw from the same pool between secrets
      expect(newDeviceId('call-phone')).toMatch(DEVICE_ID_RE);
      expect(newId('imp')).toMatch(/^imp_[A-Za-z0-9]{12}$/);
    }
    expect(secrets.size).toBe(20_000);
    const ids = new Set(Array.from({ length: 20_000 }, () => newDeviceId('locator')));
    expect(ids.size).toBe(20_000);
  });

  it('a secret checks against its hash, and another does not', () => {
    const hasher = new SecretHasher(Buffer.alloc(32, 3));
    const a = newDeviceSecret();
    const b = newDeviceSecret();
    expect(hasher.verify(a, hasher.hash(a))).toBe(true);
    expect(hasher.verify(b, hasher.hash(a))).toBe(false);
  });
});
