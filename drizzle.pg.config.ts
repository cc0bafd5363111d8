import { defineConfig } from 'drizzle-kit';

// Cluster mode's PostgreSQL store, area by area (the incident area: response/store/pg.ts; device state:
// gateway/state-store-pg.ts): its own schema and its own committed migrations, one folder for every area.
export default defineConfig({
  dialect: 'postgresql',
  schema: ['./response/store/pg-schema.ts', './gateway/state-store-pg-schema.ts'],
  out: './drizzle-pg',
});
