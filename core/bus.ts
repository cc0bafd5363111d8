// In-process bus between ingest/domain and transports. Events are emitted only after they are durable.
import { EventEmitter } from 'node:events';
import type { IncidentEvent } from './contracts.js';

export interface BusEvents {
  /** an incident event committed to the log; `unitId` is the grid unit whose ancestors may see it */
  'incident-event': [IncidentEvent & { unitId: string | null }];
  /** a device's live state changed (connected, disconnected, supervision, battery …) */
  'device-state': [{ deviceId: string; change: string }];
  /** a device's credentials were revoked or it was suspended: the broker disconnects it at once */
  'device-revoked': [{ deviceId: string; reason: string }];
  /** a command is ready to be sent to a device */
  'command': [{ deviceId: string; commandId: string }];
}

export class Bus extends EventEmitter<BusEvents> {
  constructor() {
    super({ captureRejections: true });
    // every console is a listener; the default limit of 10 is a leak warning we would hit on purpose
    this.setMaxListeners(0);
  }
}
