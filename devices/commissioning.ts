// The lifecycle step `provisioned → commissioned` (docs/design.md §2): a device bound to a resident is commissioned
// only once its commissioning test passed. Binding alone proves nothing about the device, its secret or its radio.
//
// The test passes when the device's test alarm came through: authenticated, decoded, raised by the test-alarm rule
// and made durable as a test incident. That incident then closes itself ("test passed") — nobody has to resolve a
// test to tidy the board — and its resolution commissions the device. A test incident a person resolves (an older
// one, or one opened before this gateway closed tests itself) commissions it the same way.
import type { Bus } from '../core/bus.js';
import type { Logger } from '../core/logger.js';
import type { DeviceRegistry } from './registry.js';
import { settle } from '../core/maybe.js';

/** The rule that raises test alarms (gateway/rules/test-alarm.ts); its incidents are the ones that close themselves. */
export const TEST_ALARM_RULE = 'test-alarm';
export const TEST_PASSED = 'test passed';

export interface TestIncidentLookup {
  get(incidentId: string): { deviceId: string; test: boolean; status: string } | undefined;
  /** the gateway closes an incident itself (response/incidents.ts) */
  resolveBySystem(incidentId: string, outcome: string, data?: Record<string, unknown>): unknown;
}

export function commissionOnPassedTest(d: {
  bus: Bus; incidents: TestIncidentLookup; registry: DeviceRegistry; log: Logger;
  /**
   * cluster mode, several nodes (core/shared-tables.ts): the change runs in a session, where the device's state is
   * read on the cluster's current copy — every node hears the passed test, one commissions the device
   */
  write?: (fn: () => void) => Promise<void>;
}): () => void {
  const log = d.log.child({ module: 'commissioning' });
  let closed = false;

  const commissionNow = (incidentId: string, deviceId: string) => {
    const device = d.registry.entry(deviceId);
    if (!device || device.state !== 'provisioned' || !device.residentId) return;
    d.registry.setState(device.id, 'commissioned');
    log.info({ deviceId: device.id, incidentId }, 'commissioning test passed: device commissioned');
  };
  const commission = (incidentId: string) => {
    const incident = d.incidents.get(incidentId);
    if (!incident?.test) return;
    const device = d.registry.entry(incident.deviceId);
    if (!device || device.state !== 'provisioned' || !device.residentId) return;
    if (!d.write) return commissionNow(incidentId, device.id);
    d.write(() => commissionNow(incidentId, device.id)).catch((err: unknown) => {
      // the device stays provisioned: its next passed test (or a person) commissions it
      log.error({ err, deviceId: device.id, incidentId }, 'could not mark the device commissioned after its test');
    });
  };

  // Closed on the next turn of the event loop, not inside the listener: the opened event reaches every listener (the
  // consoles' stream among them) first, and no write is added to the alarm path's publish.
  const closeTest = (incidentId: string) => {
    setImmediate(() => {
      if (closed) return;
      settle(() => {
        const incident = d.incidents.get(incidentId);
        if (!incident?.test || incident.status === 'resolved' || incident.status === 'cancelled') return undefined;
        return d.incidents.resolveBySystem(incidentId, TEST_PASSED, { rule: TEST_ALARM_RULE });
      }, () => {}, (err) => {
        // the test incident stays open: a technician can still resolve it, which commissions the device as before
        log.error({ err, incidentId }, 'could not close the passed test incident');
      });
    });
  };

  const onEvent = (e: { type: string; incidentId: string; data?: Record<string, unknown> }) => {
    try {
      if (e.type === 'opened' && e.data?.test === true && e.data.rule === TEST_ALARM_RULE) closeTest(e.incidentId);
      else if (e.type === 'resolved') commission(e.incidentId);
    } catch (err) {
      // never out of a bus listener: the incident event reaches the consoles regardless
      log.error({ err, incidentId: e.incidentId }, 'could not mark the device commissioned after its test');
    }
  };
  d.bus.on('incident-event', onEvent);
  return () => {
    closed = true;
    d.bus.off('incident-event', onEvent);
  };
}
