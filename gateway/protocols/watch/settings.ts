// Settings of the watch listener beyond the common ones (gateway/protocols/settings.ts): `protocols.watch.*`.
import { Type } from '@sinclair/typebox';

export const watchSettings = {};
