// DC-09 encryption (§5.4.6): everything after the `[` — pad, `|`, data, `]`, extended data, timestamp — is
// AES-CBC encrypted with an all-zero IV under the account's 128/192/256-bit key and sent as upper-case hex. The pad
// (characters other than `|`, `[`, `]`) makes the plaintext a whole number of 16-byte blocks; because the IV is
// fixed, the pad and the timestamp are what make two equal messages differ (and the timestamp window is what
// limits a replay). node:crypto does the AES; no key ever leaves this module in a string.
import { createCipheriv, createDecipheriv, randomInt } from 'node:crypto';

const IV = Buffer.alloc(16);
const algorithm = (key: Buffer) => `aes-${key.length * 8}-cbc`;

/** hex → plaintext (latin1), or undefined when it is not whole blocks of hex. No padding scheme: DC-09 pads itself. */
export function decryptRest(hex: string, key: Buffer): string | undefined {
  if (hex.length === 0 || hex.length % 32 !== 0 || !/^[0-9A-Fa-f]+$/.test(hex)) return undefined;
  const d = createDecipheriv(algorithm(key), key, IV);
  d.setAutoPadding(false);
  return Buffer.concat([d.update(Buffer.from(hex, 'hex')), d.final()]).toString('latin1');
}

/** Pad characters: printable ASCII without `|`, `[`, `]` (which would end the pad or the data early). */
const PAD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/** `afterPad` is what follows the pad's `|`: data `]` [x-data] timestamp. Random pad of 1..16 characters, then `|`. */
export function encryptRest(afterPad: string, key: Buffer): string {
  let padLen = 16 - ((afterPad.length + 1) % 16);
  if (padLen === 0) padLen = 16;
  let pad = '';
  for (let i = 0; i < padLen; i++) pad += PAD_ALPHABET[randomInt(PAD_ALPHABET.length)];
  const c = createCipheriv(algorithm(key), key, IV);
  c.setAutoPadding(false);
  return Buffer.concat([c.update(Buffer.from(`${pad}|${afterPad}`, 'latin1')), c.final()]).toString('hex').toUpperCase();
}
