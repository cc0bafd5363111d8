// The DC-09 CRC: CRC-16/ARC (polynomial 0x8005 reflected = 0xA001, initial 0, no final XOR), over the bytes from the
// first `"` of the message to the end of the timestamp (everything between the length field and CR), sent as four
// upper-case hex digits. Check value: "123456789" → BB3D.

const TABLE = (() => {
  const t = new Uint16Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[n] = c;
  }
  return t;
})();

export function crc16arc(bytes: Buffer | string): number {
  const b = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
  let crc = 0;
  for (let i = 0; i < b.length; i++) crc = (crc >>> 8) ^ TABLE[(crc ^ b[i]!) & 0xff]!;
  return crc;
}

export const hex4 = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
