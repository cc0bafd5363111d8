// The serial alarm-receiver adapter, for start-up: validate the `serial` entries of the configuration and start
// one adapter per receiver.
import { ConfigError } from '../../../core/errors.js';
import { validateSerialConfig } from './config.js';
import { startSerialReceiver, type SerialReceiver, type SerialReceiverOptions } from './receiver.js';

export * from './frames.js';
export * from './contact-id.js';
export * from './config.js';
export * from './receiver.js';
export * from './framer.js';

export type SerialDeps = Pick<
  SerialReceiverOptions,
  'sink' | 'log' | 'resolveAccount' | 'resolveModel' | 'commLostAtStart' | 'now' | 'onUnreadable'
> & {
  /**
   * The gateway's local time as an offset from UTC in minutes (ruleSettings.timeZoneOffsetMinutes): the panels'
   * clock for a receiver whose entry does not set its own panelUtcOffsetMinutes. Absent: the host's time zone.
   */
  timeZoneOffsetMinutes?: number | undefined;
};

export interface SerialReceivers {
  receivers: SerialReceiver[];
  close(): Promise<void>;
}

/**
 * Validate every entry (throwing one ConfigError that lists all problems, each naming `serial[i].field`) and
 * start an adapter for each. A port that is absent at start-up does not fail start-up: its adapter keeps
 * trying with back-off, and its receiver goes comm-lost after heartbeatTimeoutMs.
 */
export async function startSerialReceivers(entries: readonly unknown[], deps: SerialDeps): Promise<SerialReceivers> {
  const checked = validateSerialConfig(entries);
  if (!checked.ok) throw new ConfigError(checked.errors);
  const receivers: SerialReceiver[] = [];
  const { timeZoneOffsetMinutes, ...services } = deps;
  for (const cfg of checked.value) {
    receivers.push(await startSerialReceiver({ ...cfg, ...services, panelUtcOffsetMinutes: cfg.panelUtcOffsetMinutes ?? timeZoneOffsetMinutes }));
  }
  return {
    receivers,
    async close() {
      await Promise.all(receivers.map((r) => r.close()));
    },
  };
}
