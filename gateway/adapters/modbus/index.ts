// The Modbus field adapter as the gateway starts it: validate `config.modbus`, then one poller per link.
import type { Logger } from '../../../core/logger.js';
import type { ObservationSink } from '../../../core/contracts.js';
import { deviceForChannels, loadModbusLinks, type ModbusLinkSettings } from './config.js';
import { startModbusLink, type ModbusLink, type ModbusLinkStats } from './poller.js';
import type { AdapterMemory } from '../link-state.js';

export { startModbusLink, DEFAULT_RETRY, describeLink } from './poller.js';
export type { ModbusLink, ModbusLinkOptions, ModbusLinkStats, ModbusTransportOptions, RetryOptions } from './poller.js';
export { validateModbusLinks, loadModbusLinks, deviceForChannels, ModbusLinkConfigSchema } from './config.js';
export type { ModbusLinkSettings, ModbusLinkConfig } from './config.js';
export { validateRegisterMap, parseRegisterMap, loadRegisterMap, RegisterMapError, MAPS_DIR } from './register-map.js';
export type { RegisterMap, RegisterPoint, MapProblem } from './register-map.js';

export interface ModbusAdapter {
  links: ModbusLink[];
  stats(): ModbusLinkStats[];
  close(): Promise<void>;
}

/** Start one poller per validated link. */
export function startModbusLinks(
  links: readonly ModbusLinkSettings[],
  deps: { sink: ObservationSink; log: Logger; memory?: AdapterMemory },
): ModbusAdapter {
  const started = links.map((s) =>
    startModbusLink({
      name: s.name,
      link: s.link,
      unitId: s.unitId,
      map: s.map,
      pollMs: s.pollMs,
      timeoutMs: s.timeoutMs,
      retry: s.retry,
      deviceFor: deviceForChannels(s),
      sink: deps.sink,
      log: deps.log,
      linkDeviceId: s.deviceId,
      ...(deps.memory ? { memory: deps.memory } : {}),
    }),
  );
  return {
    links: started,
    stats: () => started.map((l) => l.stats()),
    close: async () => {
      await Promise.all(started.map((l) => l.close()));
    },
  };
}

/**
 * Validate the configuration's `modbus` entries (throws ConfigError naming every bad field, maps included),
 * log the warnings, and start polling.
 */
export function startModbusAdapter(
  entries: readonly unknown[],
  deps: { sink: ObservationSink; log: Logger; mapsDir?: string; memory?: AdapterMemory },
): ModbusAdapter {
  const { links, warnings } = loadModbusLinks(entries, deps.mapsDir ? { mapsDir: deps.mapsDir } : {});
  const log = deps.log.child({ module: 'modbus' });
  for (const w of warnings) log.warn(w);
  return startModbusLinks(links, deps);
}
