import { defineConfig } from 'drizzle-kit';

// Cluster mode's PostgreSQL store (response/store/pg.ts): its own schema and its own committed migrations.
export default defineConfig({
  dialect: 'postgresql',
  schema: ['./response/store/pg-schema.ts'],
  out: './drizzle-pg',
});
