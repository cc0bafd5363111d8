// What the previous run of the gateway left of the field adapters' link state, read back from the database at start.
// The adapters keep "comm-lost reported" in memory only; without this, a receiver or a Modbus unit that was lost when
// the gateway stopped never sends comm-restored after the restart, and its comm-lost card stays on the board forever.
import type Database from 'better-sqlite3';
import type pg from 'pg';

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

/** Modbus points of `map` left faulting, from a device's device-fault rows (newest first). */
function standingFaults(rows: readonly { data: string }[], map: string): string[] {
  const seen = new Set<string>();
  const standing: string[] = [];
  for (const row of rows) {
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
}

/**
 * a comm-lost card of the device still open, in this node's file (one node's log, or a cluster node's replica); its
 * own, not an unknown panel's behind it (account)
 */
function openCommLostCard(sqlite: Database.Database): (deviceId: string) => boolean {
  const openCard = sqlite.prepare<[string], { id: string }>(
    `SELECT id FROM incidents WHERE device_id = ? AND type = 'comm-lost' AND test = 0 AND account IS NULL AND status NOT IN ('resolved', 'cancelled') LIMIT 1`,
  );
  return (deviceId) => openCard.get(deviceId) !== undefined;
}

/** a device's newest comm-lost or comm-restored row (SQLite; a test pins the plan) */
export const LAST_COMM_SQL =
  `SELECT type FROM observations WHERE device_id = ? AND life_safety = 0 AND type IN ('comm-lost', 'comm-restored') ORDER BY id DESC LIMIT 1`;
/** a device's newest Modbus device-fault rows, at most `?` (SQLite; a test pins the plan) */
export const FAULTS_SQL =
  `SELECT data FROM observations WHERE device_id = ? AND life_safety = 0 AND type = 'device-fault' AND source = 'modbus' ORDER BY id DESC LIMIT ?`;

export function adapterMemory(sqlite: Database.Database): AdapterMemory {
  // observations_other_device_idx (device_id, id) of the rows that are not life-safety, as these types are not: read
  // backwards from the newest row of the device (the query states the index's condition, or SQLite would not use it)
  const lastComm = sqlite.prepare<[string], { type: string }>(LAST_COMM_SQL);
  const cardOpen = openCommLostCard(sqlite);
  const faults = sqlite.prepare<[string, number], { data: string }>(FAULTS_SQL);
  return {
    commLost: (deviceId) => lastComm.get(deviceId)?.type === 'comm-lost' || cardOpen(deviceId),
    pointFaults: (deviceId, map) => standingFaults(faults.all(deviceId, FAULT_ROWS), map),
  };
}

/**
 * The same memory on a cluster node on PostgreSQL, whose observations are in the shared store: read there once at
 * start for the devices the adapters may ask about (`deviceIds`: the registry's field devices), so that the adapters'
 * synchronous questions are answered from it; open cards from the node's replica of the log.
 */
export async function pgAdapterMemory(pool: pg.Pool, sqlite: Database.Database, deviceIds: readonly string[]): Promise<AdapterMemory> {
  const cardOpen = openCommLostCard(sqlite);
  const lastComm = new Map<string, string>();
  const faults = new Map<string, { data: string }[]>();
  if (deviceIds.length) {
    const comm = await pool.query<{ device_id: string; type: string }>(
      `SELECT DISTINCT ON (device_id) device_id, type FROM observations
        WHERE device_id = ANY($1) AND NOT life_safety AND type IN ('comm-lost', 'comm-restored') ORDER BY device_id, id DESC`, [deviceIds]);
    for (const r of comm.rows) lastComm.set(r.device_id, r.type);
    const rows = await pool.query<{ device_id: string; data: unknown }>(
      `SELECT device_id, data FROM (
         SELECT device_id, data, id, row_number() OVER (PARTITION BY device_id ORDER BY id DESC) AS n FROM observations
          WHERE device_id = ANY($1) AND NOT life_safety AND type = 'device-fault' AND source = 'modbus') x
        WHERE n <= $2 ORDER BY device_id, id DESC`, [deviceIds, FAULT_ROWS]);
    for (const r of rows.rows) {
      const list = faults.get(r.device_id) ?? [];
      list.push({ data: typeof r.data === 'string' ? r.data : JSON.stringify(r.data) });
      faults.set(r.device_id, list);
    }
  }
  return {
    commLost: (deviceId) => lastComm.get(deviceId) === 'comm-lost' || cardOpen(deviceId),
    pointFaults: (deviceId, map) => standingFaults(faults.get(deviceId) ?? [], map),
  };
}
