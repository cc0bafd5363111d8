import { randomBytes } from 'node:crypto';

/** Short random ids with a readable prefix (`inc_…`, `unit_…`, `stf_…`); 72 bits, URL-safe, no `-`/`_` inside. */
export function newId(prefix: string): string {
  return `${prefix}_${randomBytes(9).toString('base64url').replace(/[-_]/g, 'x')}`;
}

/** ids supplied by an administrator (`grid-12`, `district.north`) */
export const UNIT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
