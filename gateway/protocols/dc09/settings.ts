// Settings of the dc09 listener beyond the common ones (gateway/protocols/settings.ts): `protocols.dc09.*`.
import { Type } from '@sinclair/typebox';

export const dc09Settings = {};
