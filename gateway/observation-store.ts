// The observation area's storage, behind one narrow interface: what the ingest (gateway/ingest.ts) appends and looks
// up inside its write transaction — the observation rows with their dedup keys, and the refusals (`rejects`). Two
// implementations keep the same contract (test/cluster/observation-store-contract.test.ts runs one suite against
// both), as the incident and device-state areas do:
// - SQLite (below): the one-node default, synchronous, inside the caller's transaction;
// - PostgreSQL (gateway/observation-store-pg.ts): cluster mode's shared store, asynchronous.
//
// Dedup is the store's unique key: at-least-once on the wire, exactly-once here. A device's resend repeats its seq
// *and* its device time; `insert` of a key already stored writes nothing and says so (0). A key that comes back and is
// not a resend (a terminal whose clock and counter reset) is stored as the key's next generation — the caller decides
// which, from `findKeyed`.
import type Database from 'better-sqlite3';
import type { Ret, StoreMode } from '../response/store/types.js';
import { storedText } from '../core/stored-text.js';

export interface NewObservation {
  deviceId: string;
  type: string;
  seq: number | null;
  deviceTs: number | null;
  receivedAt: number;
  source: string;
  lifeSafety: boolean;
  /** the observation's fields as JSON text: kept as given (a keyless resend is recognised by the same text) */
  data: string;
  /** its flags as JSON text, or null */
  flags: string | null;
  session: string | null;
  packetId: number | null;
  generation: number;
}

/** A stored observation, as dedup asks about it. */
export interface PriorObservation {
  id: number;
  session: string | null;
  receivedAt: number;
  generation: number;
  incidentId: string | null;
  type: string;
  /** the JSON text as it was stored */
  data: string;
}

export interface RejectRow {
  deviceId: string | null;
  source: string;
  topic: string | null;
  reason: string;
  raw: string;
  at: number;
}

export interface ObservationStore<M extends StoreMode> {
  readonly mode: M;
  /** the new row's id; 0 when a row with its (device, seq, device time, generation) is stored already */
  insert(o: NewObservation): Ret<M, number>;
  /**
   * the stored row of this key with the highest generation, in the key's class: a key is unique among a device's
   * life-safety rows and among its other rows (a resend never changes its type, so never its class)
   */
  findKeyed(deviceId: string, seq: number, deviceTs: number, lifeSafety: boolean): Ret<M, PriorObservation | undefined>;
  /** the newest row without a key (no seq) that came with this packet id */
  findKeyless(deviceId: string, packetId: number): Ret<M, PriorObservation | undefined>;
  /** the incident a life-safety observation opened or joined */
  setIncident(observationId: number, incidentId: string): Ret<M, void>;
  /** take a row back (its alarm could not be written) */
  remove(observationId: number): Ret<M, void>;
  insertRejects(rows: readonly RejectRow[]): Ret<M, void>;
  /** keep the newest `keep` refusals (by id), delete the rest */
  pruneRejects(keep: number): Ret<M, void>;
}

/** a refusal as both engines store it: its device-chosen text through storedText */
export function storedReject(r: RejectRow): RejectRow {
  return { ...r, deviceId: storedText(r.deviceId), topic: storedText(r.topic), reason: storedText(r.reason), raw: storedText(r.raw) };
}

const PRIOR = `select id, session, received_at as receivedAt, generation, incident_id as incidentId, type, data from observations`;

/**
 * A key's newest row in its class (SQLite), one statement per class, each on its partial unique index
 * (observations_alarm_key_uq, observations_other_key_uq): SQLite uses a partial index only for a query whose WHERE
 * holds the index's condition as written, not as a parameter. A test pins the plans.
 */
export const keyedSql = (lifeSafety: boolean) =>
  `${PRIOR} where device_id = ? and seq = ? and device_ts = ? and life_safety = ${lifeSafety ? 1 : 0} order by generation desc limit 1`;

export function createSqliteObservationStore(db: Database.Database): ObservationStore<'sync'> {
  const insert = db.prepare(`insert into observations (device_id, type, seq, device_ts, received_at, source, life_safety, data, flags,
    session, packet_id, generation) values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) on conflict do nothing`);
  const findAlarmKeyed = db.prepare(keyedSql(true));
  const findOtherKeyed = db.prepare(keyedSql(false));
  // the partial index observations_keyless_idx: only rows without a dedup key that came with a packet id
  const findKeyless = db.prepare(`${PRIOR} where device_id = ? and seq is null and packet_id = ? order by id desc limit 1`);
  const setIncident = db.prepare('update observations set incident_id = ? where id = ?');
  const remove = db.prepare('delete from observations where id = ?');
  const insertReject = db.prepare('insert into rejects (device_id, source, topic, reason, raw, at) values (?, ?, ?, ?, ?, ?)');
  const pruneRejects = db.prepare('delete from rejects where id <= (select max(id) from rejects) - ?');
  return {
    mode: 'sync',
    insert(o) {
      const info = insert.run(o.deviceId, o.type, o.seq, o.deviceTs, o.receivedAt, o.source, o.lifeSafety ? 1 : 0, o.data, o.flags,
        o.session, o.packetId, o.generation);
      // on a conflict lastInsertRowid is the connection's previous insert, not this row's
      return info.changes === 0 ? 0 : Number(info.lastInsertRowid);
    },
    findKeyed: (deviceId, seq, deviceTs, lifeSafety) =>
      (lifeSafety ? findAlarmKeyed : findOtherKeyed).get(deviceId, seq, deviceTs) as PriorObservation | undefined,
    findKeyless: (deviceId, packetId) => findKeyless.get(deviceId, packetId) as PriorObservation | undefined,
    setIncident(observationId, incidentId) {
      setIncident.run(incidentId, observationId);
    },
    remove(observationId) {
      remove.run(observationId);
    },
    insertRejects(rows) {
      for (const row of rows) {
        const r = storedReject(row);
        insertReject.run(r.deviceId, r.source, r.topic, r.reason, r.raw, r.at);
      }
    },
    pruneRejects(keep) {
      pruneRejects.run(keep);
    },
  };
}
