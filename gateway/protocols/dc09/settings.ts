// Settings of the dc09 listener beyond the common ones (gateway/protocols/settings.ts): `protocols.dc09.*`.
import { Type } from '@sinclair/typebox';

export const dc09Settings = {
  keysFile: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'JSON file { "<account>": "<hex AES key>" } of the encrypted lines (32/48/64 hex digits: AES-128/192/256); must not be readable by group or others (chmod 600). Read again when it changes.',
    }),
  ),
  timestampPastS: Type.Integer({
    minimum: 1,
    default: 20,
    description: 'a message whose timestamp is more than this many seconds behind the receiver clock is answered NAK (with the receiver time, so the panel corrects its clock)',
  }),
  timestampFutureS: Type.Integer({
    minimum: 1,
    default: 40,
    description: 'a message whose timestamp is more than this many seconds ahead of the receiver clock is answered NAK',
  }),
  plaintextTimestampWindow: Type.Boolean({
    default: true,
    description: 'also hold unencrypted messages that carry a timestamp to the window (false: only encrypted ones, for panels that cannot take the clock from a NAK)',
  }),
  unknownAccountsDeviceId: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        "a device (kind receiver) that stands for this receiver, as a serial receiver's receiverDeviceId: an unencrypted event from an account no device holds is stored on it with its account (flag unknown-account; a card of that account's own, shown as \"unregistered account\") and ACKed once durable, as alarm receivers take every account. Unset: such an event is answered NAK (the panel keeps it and tries its backup path) and only counted and logged",
    }),
  ),
  unknownAccountsPerMinute: Type.Integer({
    minimum: 1,
    default: 30,
    description:
      'with unknownAccountsDeviceId: how many accounts no device holds may open their first card a minute (a burst of this many at once); an account seen in the last 10 minutes is never held back. Beyond it, a new one is answered NAK (the panel tries again) and counted as unknown-accounts-limit: a stranger sending made-up accounts cannot bury the board',
  }),
  pollIntervalS: Type.Integer({
    minimum: 1,
    default: 180,
    description: "a panel's expected NULL-poll interval when its device config has no pollIntervalS (EN 50136 reporting path)",
  }),
  pollMissFactor: Type.Number({
    minimum: 1.1,
    default: 2,
    description: 'no poll nor event for interval × this → comm-lost for the panel (2: one lost poll and its retries are not a lost path)',
  }),
};
