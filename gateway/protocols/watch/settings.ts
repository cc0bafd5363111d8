// Settings of the watch listener beyond the common ones (gateway/protocols/settings.ts): `protocols.watch.*`.
import { Type } from '@sinclair/typebox';

export const watchSettings = {
  refusalsBeforeClose: Type.Integer({
    minimum: 1, maximum: 100, default: 3,
    description: 'frames from an unprovisioned or suspended watch id refused on one connection before it is closed',
  }),
  ackText: Type.String({
    minLength: 1, maxLength: 100, default: 'Help is coming',
    description: 'the message a watch shows when an operator acknowledges its alarm (the protocol has no acknowledge keyword)',
  }),
};

export interface WatchSettings {
  refusalsBeforeClose: number;
  ackText: string;
}
