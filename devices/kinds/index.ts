// The device kinds, listed explicitly: a new kind is one file and one line here.
import type { DeviceKind } from '../../core/contracts.js';
import type { KindDefinition } from './types.js';
import { callPhone } from './call-phone.js';
import { fallSensor } from './fall-sensor.js';
import { locator } from './locator.js';
import { modbus } from './modbus.js';
import { receiver } from './receiver.js';
import { watch } from './watch.js';
import { jt808 } from './jt808.js';
import { dc09 } from './dc09.js';

export type { KindDefinition, MessageSpec } from './types.js';

export const KINDS: Readonly<Record<DeviceKind, KindDefinition>> = {
  'call-phone': callPhone,
  'fall-sensor': fallSensor,
  locator,
  modbus,
  receiver,
  watch,
  jt808,
  dc09,
};


/** kinds that connect over MQTT themselves (the others are read by field adapters) */
export const MQTT_KINDS: readonly DeviceKind[] = ['call-phone', 'fall-sensor', 'locator'];
