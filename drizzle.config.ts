import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: ['./core/schema.ts', './core/audit-schema.ts', './devices/schema.ts', './response/schema.ts'],
  out: './drizzle',
});
