import { defineConfig } from 'drizzle-kit';

// Cluster mode's PostgreSQL store, area by area (incidents: response/store/pg.ts; their receipts:
// response/receipt-store-pg.ts; device state, observations and commands: gateway/*-store-pg.ts; accounts and
// the audit log: core/*-store-pg.ts): its own schema and its own committed migrations, one folder for every area.
export default defineConfig({
  dialect: 'postgresql',
  schema: ['./response/store/pg-schema.ts', './gateway/pg-schema.ts', './core/pg-schema.ts'],
  out: './drizzle-pg',
});
