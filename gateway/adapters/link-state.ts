// What the previous run of the gateway left of the field adapters' link state, read back from the database at start.
// The adapters keep "comm-lost reported" in memory only; without this, a receiver or a Modbus unit that was lost when
// the gateway stopped never sends comm-restored after the restart, and its comm-lost card stays on the board forever.
import type Database from 'better-sqlite3';

export interface AdapterMemory {
  /**
   * The link of this device was left lost: its last comm-lost observation is not followed by a comm-restored, or a
   * (real, not test) comm-lost incident of the device is still open.
   */
  commLost(deviceId: string): boolean;
  /**
   * Modbus points of this device whose device-fault (an exception for that point) was left standing: the latest
   * device-fault observation of each point of `map` is not a restore.
   */
  pointFaults(deviceId: string, map: string): string[];
}

/** How far back device-fault rows are read for point faults (a device with many points faulting and clearing). */
const FAULT_ROWS = 500;

export function adapterMemory(sqlite: Database.Database): AdapterMemory {
  // observations_device_idx (device_id, id): read backwards from the newest row of the device
  const lastComm = sqlite.prepare<[string], { type: string }>(
    `SELECT type FROM observations WHERE device_id = ? AND type IN ('comm-lost', 'comm-restored') ORDER BY id DESC LIMIT 1`,
  );
  const openCard = sqlite.prepare<[string], { id: string }>(
    `SELECT id FROM incidents WHERE device_id = ? AND type = 'comm-lost' AND test = 0 AND status NOT IN ('resolved', 'cancelled') LIMIT 1`,
  );
  const faults = sqlite.prepare<[string, number], { data: string }>(
    `SELECT data FROM observations WHERE device_id = ? AND type = 'device-fault' AND source = 'modbus' ORDER BY id DESC LIMIT ?`,
  );
  return {
    commLost(deviceId) {
      return lastComm.get(deviceId)?.type === 'comm-lost' || openCard.get(deviceId) !== undefined;
    },
    pointFaults(deviceId, map) {
      const seen = new Set<string>();
      const standing: string[] = [];
      for (const row of faults.all(deviceId, FAULT_ROWS)) {
        let data: { restore?: unknown; detail?: { point?: unknown; points?: unknown; map?: unknown } };
        try {
          data = JSON.parse(row.data) as typeof data;
        } catch {
          continue;
        }
        if (data.detail?.map !== map) continue;
        // a fault names the points of its register, a restore the points it restores
        const named = [data.detail.point, ...(Array.isArray(data.detail.points) ? data.detail.points : [])];
        for (const point of named) {
          if (typeof point !== 'string' || seen.has(point)) continue;
          seen.add(point);
          if (data.restore !== true) standing.push(point);
        }
      }
      return standing;
    },
  };
}
