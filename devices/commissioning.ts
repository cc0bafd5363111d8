// The lifecycle step `provisioned → commissioned` (docs/design.md §2): a device bound to a resident is commissioned
// only once its commissioning test passed — the test alarm it raised came through the whole path and a person
// closed (resolved) that test incident. Binding alone proves nothing about the device, its secret or its radio.
import type { Bus } from '../core/bus.js';
import type { Logger } from '../core/logger.js';
import type { DeviceRegistry } from './registry.js';

export interface TestIncidentLookup {
  get(incidentId: string): { deviceId: string; test: boolean } | undefined;
}

export function commissionOnPassedTest(d: { bus: Bus; incidents: TestIncidentLookup; registry: DeviceRegistry; log: Logger }): () => void {
  const log = d.log.child({ module: 'commissioning' });
  const onEvent = (e: { type: string; incidentId: string }) => {
    if (e.type !== 'resolved') return;
    try {
      const incident = d.incidents.get(e.incidentId);
      if (!incident?.test) return;
      const device = d.registry.entry(incident.deviceId);
      if (!device || device.state !== 'provisioned' || !device.residentId) return;
      d.registry.setState(device.id, 'commissioned');
      log.info({ deviceId: device.id, incidentId: e.incidentId }, 'commissioning test passed: device commissioned');
    } catch (err) {
      // never out of a bus listener: the incident event reaches the consoles regardless
      log.error({ err, incidentId: e.incidentId }, 'could not mark the device commissioned after its test');
    }
  };
  d.bus.on('incident-event', onEvent);
  return () => d.bus.off('incident-event', onEvent);
}
