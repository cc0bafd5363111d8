import { defineConfig } from 'drizzle-kit';

export default defineConfig({
  dialect: 'sqlite',
  schema: ['./core/schema.ts', './devices/schema.ts', './response/schema.ts'],
  out: './drizzle',
});
