// Settings of the jt808 listener beyond the common ones (gateway/protocols/settings.ts): `protocols.jt808.*`.
import { Type } from '@sinclair/typebox';

export const jt808Settings = {};
