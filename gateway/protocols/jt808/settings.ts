// Settings of the jt808 listener beyond the common ones (gateway/protocols/settings.ts): `protocols.jt808.*`.
import { Type } from '@sinclair/typebox';

export const jt808Settings = {
  terminalUtcOffsetMinutes: Type.Integer({
    minimum: -720, maximum: 840, default: 480,
    description: 'the time zone of the terminals\' clocks in minutes east of UTC: JT/T 808 times are GMT+8 (480) by the standard; set 0 for terminals configured to UTC',
  }),
  ackText: Type.String({
    minLength: 1, maxLength: 100, default: 'Help is coming',
    description: 'the text (0x8300, shown and read aloud) a terminal gets when an operator acknowledges its alarm, sent in GBK: Chinese is what most of these terminals show and read aloud (e.g. "救援人员正在赶来"); every character must exist in GBK (checked at start-up)',
  }),
  authFailuresBeforeClose: Type.Integer({
    minimum: 1, maximum: 100, default: 3,
    description: 'failed authentications (0x0102 with a wrong code) on one connection before it is closed',
  }),
  maxPendingCommands: Type.Integer({
    minimum: 1, maximum: 1024, default: 64,
    description: 'commands per connection waiting for the terminal\'s answer (0x0001 / 0x0201); the oldest is forgotten beyond',
  }),
};

export interface Jt808Settings {
  terminalUtcOffsetMinutes: number;
  ackText: string;
  authFailuresBeforeClose: number;
  maxPendingCommands: number;
}
