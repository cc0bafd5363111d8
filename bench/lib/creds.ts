// Device identities for the bench: provisioned through eldergate's bulk import, or made up for the baselines
// (raw aedes and Mosquitto check no credentials) in the same shape, so every system sees the same clients.
import { randomBytes } from 'node:crypto';

export interface Cred {
  id: string;
  secret: string;
  kind: string;
}

/** ids that pass eldergate's DEVICE_ID_RE, so payloads and topics are byte-for-byte the same everywhere */
export function fakeCreds(n: number, label: string, kind = 'call-phone'): Cred[] {
  const prefix = kind === 'fall-sensor' ? 'fs' : kind === 'locator' ? 'lc' : 'cp';
  const tag = label.replace(/[^a-z0-9]/g, '').slice(0, 4) || 'b';
  return Array.from({ length: n }, (_, i) => ({
    id: `${prefix}-${tag}${i.toString(36).padStart(8, '0')}`,
    secret: randomBytes(24).toString('base64url'),
    kind,
  }));
}

/** parse the import's answer, CSV `id,serial,kind,secret` */
export function parseImportCsv(text: string): Cred[] {
  const lines = text.trim().split(/\r?\n/);
  const header = lines.shift()?.split(',') ?? [];
  const at = (name: string) => {
    const i = header.indexOf(name);
    if (i < 0) throw new Error(`the import answered without a "${name}" column: ${header.join(',')}`);
    return i;
  };
  const [iId, iKind, iSecret] = [at('id'), at('kind'), at('secret')];
  return lines.map((l) => {
    const f = l.split(',');
    return { id: f[iId]!, kind: f[iKind]!, secret: f[iSecret]! };
  });
}
