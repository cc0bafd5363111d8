// Service secrets generated at first start and kept in the database (never in config files, never logged): today
// only the device-secret hashing key. It may stay with the hashes: device secrets are 192-bit random
// (devices/credentials.ts), so a copy of the database plus this key still leaves 2^192 guesses per device — nothing
// to brute-force. The token-signing key is different (it mints tokens) and lives outside the database:
// core/token-keys.ts.
import { randomBytes } from 'node:crypto';
import { eq } from 'drizzle-orm';
import type { Db } from './db.js';
import { secrets } from './schema.js';

export function serviceSecret(db: Db, name: string, bytes = 32): Buffer {
  const row = db.select().from(secrets).where(eq(secrets.name, name)).get();
  if (row) return Buffer.from(row.value, 'base64');
  const value = randomBytes(bytes);
  db.insert(secrets).values({ name, value: value.toString('base64'), createdAt: Date.now() }).onConflictDoNothing().run();
  const again = db.select().from(secrets).where(eq(secrets.name, name)).get();
  return Buffer.from(again!.value, 'base64');
}
