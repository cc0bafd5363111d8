// Service secrets generated at first start and kept in the database (never in config files, never logged).
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
