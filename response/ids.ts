// Ids: the same short random ids as the registry's (`inc_…`, `unit_…`, `stf_…`).
export { newId } from '../devices/credentials.js';

/** ids supplied by an administrator (`grid-12`, `district.north`) */
export const UNIT_ID_PATTERN = '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$';
