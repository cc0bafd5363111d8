// The device registry: provisioning, binding, credentials and lifecycle. Keeps a small in-memory entry per device so
// that authentication and ingest never touch the disk on the hot path.
import pLimit from 'p-limit';
import { and, desc, eq, gt, inArray, isNull, like, lt, ne, notInArray, or, sql, type SQL } from 'drizzle-orm';
import type Database from 'better-sqlite3';
import { statementCache, type StatementCache } from '../core/statement-cache.js';
import type { SQLiteColumn } from 'drizzle-orm/sqlite-core';
import { whenFree, writeWhenFree, type Db } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { UnitScope } from '../core/unit-scope.js';
import { DEVICE_KINDS, type DeviceKind, type DeviceLifecycle } from '../core/contracts.js';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.js';
import { devices, deviceImports, deviceState, residents, type AccountScheme } from './schema.js';
import { newDeviceId, newDeviceSecret, newId, type SecretHasher } from './credentials.js';
import { FORMULA_RE, inSlices, untilDeadline, type ImportRow } from './import.js';
import { inPageSlices, rowsByIds, type RowsByIds } from '../core/page-slices.js';
import type { SafeZone, Contact } from './schema.js';

/** What the hot path needs to know about a device, kept small (100k of them live in memory). */
export interface DeviceEntry {
  id: string;
  kind: DeviceKind;
  state: DeviceLifecycle;
  secretHash: string;
  residentId: string | null;
  unitId: string | null;
  power: 'battery' | 'mains';
  config: Record<string, unknown>;
  /** a test run's device (devices.test): its incidents are test incidents */
  test: boolean;
}

/**
 * Something about a device or a resident changed that rules depend on (binding, lifecycle, resident's zone).
 * `anew`: what the rules remember of the device is not about what it is now: its test mark was cleared ('in service':
 * the test run's memory is not the real device's), or it is bound to another resident or to nobody ('rebound': what
 * was learnt of one person, such as the side of his zone he was last on, is not the next one's).
 */
export type RegistryChange = { deviceId: string; anew?: 'in service' | 'rebound' } | { residentId: string };

export type DeviceRow = typeof devices.$inferSelect;
export type ResidentRow = typeof residents.$inferSelect;

export interface ProvisionInput {
  kind: DeviceKind;
  serial: string;
  model?: string;
  firmware?: string;
  power?: 'battery' | 'mains';
  /** a test run's device: its incidents are test incidents (response/incidents.ts) */
  test?: boolean;
}

const SERIAL_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$/;

/** A device's account identifier on a shared channel (a serial receiver's Contact ID account, …). */
export interface DeviceAccount { scheme: AccountScheme; id: string }

/** A secret a spreadsheet would not take for a formula (base64url may start with '-'), so a CSV never needs to alter it. */
function newCsvSafeSecret(): string {
  for (;;) {
    const s = newDeviceSecret();
    if (!FORMULA_RE.test(s)) return s;
  }
}

/**
 * The config key recording that a protocol terminal holds the device's current secret (markTerminalRegistered). Only
 * the registry writes it: a config PATCH keeps it as stored (a person opens registration with rotate-secret).
 */
export const TERMINAL_REGISTERED_KEY = 'authCodeIssuedAt';

/** A config as a person sent it, with the registry's own keys as they were stored (not set, not cleared). */
function keepReserved(next: Record<string, unknown>, stored: Record<string, unknown>): Record<string, unknown> {
  const { [TERMINAL_REGISTERED_KEY]: _sent, ...rest } = next;
  return stored[TERMINAL_REGISTERED_KEY] === undefined ? rest : { ...rest, [TERMINAL_REGISTERED_KEY]: stored[TERMINAL_REGISTERED_KEY] };
}

/** ids read in one turn of the event loop by listIds (~2-4 ms at any depth of a 100,000-device fleet) */
export const LIST_IDS_PAGE = 5_000;

/** Devices of an import still running are not there yet (nor those of one that failed, until they are deleted). */
const notPending = (): SQL => or(isNull(devices.importId), notInArray(devices.importId,
  sql`(SELECT id FROM device_imports WHERE status <> 'done')`))!;

/**
 * Imports that may wait for the one running (each holds its parsed file meanwhile, ≤ 50,000 rows): two test engineers'
 * simulator runs, or an admin's import beside one, take turns instead of being refused.
 */
const IMPORTS_WAITING = 4;

/** What the device list is filtered by (GET /api/devices) */
export interface DeviceFilter {
  kind?: string; state?: string; residentId?: string; scope?: UnitScope | null; q?: string;
}

/** What another thread's copy of the registry must reload (gateway/writer): rows changed, and the changes to announce. */
export interface RegistryReplication {
  deviceIds: string[];
  residentIds: string[];
  changes: RegistryChange[];
  /**
   * The devices of `deviceIds` as this registry holds them when the replication is sent (all committed): the entry
   * (null: gone or not visible) and the account keys it holds. The replica takes them as they are: no query per
   * device (reading 18,000 rows back through drizzle took the writer 250 ms, and an SOS waited behind it).
   */
  entries: [id: string, entry: DeviceEntry | null, accountKeys: string[]][];
}

/** The device map: every entry set is noted for the replicas. */
class EntryMap extends Map<string, DeviceEntry> {
  onSet: ((id: string) => void) | null = null;
  override set(id: string, entry: DeviceEntry): this {
    super.set(id, entry);
    this.onSet?.(id);
    return this;
  }
}

export class DeviceRegistry {
  private readonly entries = new EntryMap();
  private readonly residentUnit = new Map<string, string | null>();
  /** `${scheme} ${account}` → device id, for every device holding an account identifier */
  private readonly accounts = new Map<string, string>();
  private readonly sqlite: Database.Database;
  /** the list queries' statements, by their text (which depends on the filter), prepared once each */
  private readonly statement: StatementCache;
  private importing = false;
  /** what start-up found and cleaned (an import cut short by a crash) or flagged (account claims lost in migration) */
  readonly startupNotes: { abandonedImports: { id: string; count: number }[]; accountConflicts: { deviceId: string; account: unknown }[] };

  /**
   * `replica`: a read copy in another thread (the writer's), kept current by `replicate()`; it never cleans up after
   * an import (the main thread's registry does, at start, before the writer thread exists; an import running now
   * must not be taken for one cut short).
   */
  constructor(
    private readonly db: Db,
    private readonly hasher: SecretHasher,
    private readonly bus: Bus,
    opts: { replica?: boolean } = {},
  ) {
    this.sqlite = (db as Db & { $client: Database.Database }).$client;
    this.statement = statementCache(this.sqlite);
    this.rowsOf = rowsByIds(db, devices);
    this.residentRowsOf = rowsByIds(db, residents);
    // an import cut short by a crash never happened: its devices are deleted before anything can see them
    const abandoned = opts.replica ? [] : this.sqlite.prepare(`SELECT id, count FROM device_imports WHERE status IN ('importing', 'failed')`).all() as { id: string; count: number }[];
    this.sqlite.transaction(() => {
      for (const imp of abandoned) {
        this.sqlite.prepare('DELETE FROM device_state WHERE device_id IN (SELECT id FROM devices WHERE import_id = ?)').run(imp.id);
        this.sqlite.prepare('DELETE FROM devices WHERE import_id = ?').run(imp.id);
        this.sqlite.prepare(`UPDATE device_imports SET status = 'abandoned', finished_at = ? WHERE id = ?`).run(Date.now(), imp.id);
      }
    }).immediate();
    for (const r of db.select({ id: residents.id, unitId: residents.unitId }).from(residents).all()) {
      this.residentUnit.set(r.id, r.unitId);
    }
    const accountConflicts: { deviceId: string; account: unknown }[] = [];
    for (const d of db.select().from(devices).all()) {
      this.entries.set(d.id, this.toEntry(d));
      if (d.accountScheme && d.account) this.accounts.set(`${d.accountScheme} ${d.account}`, d.id);
      if (d.config.accountConflict !== undefined) accountConflicts.push({ deviceId: d.id, account: d.config.accountConflict });
    }
    this.startupNotes = { abandonedImports: abandoned, accountConflicts };
  }

  private toEntry(d: DeviceRow): DeviceEntry {
    return {
      id: d.id,
      kind: d.kind,
      state: d.state,
      secretHash: d.secretHash,
      residentId: d.residentId,
      unitId: d.residentId ? (this.residentUnit.get(d.residentId) ?? null) : null,
      power: d.power,
      config: d.config,
      test: d.test,
    };
  }

  private readonly listeners: ((change: RegistryChange) => void)[] = [];
  onChange(listener: (change: RegistryChange) => void): void {
    this.listeners.push(listener);
  }
  private changed(change: RegistryChange): void {
    this.noteReplication(change);
    for (const l of this.listeners) l(change);
  }

  private replication: RegistryReplication | null = null;
  private replicator: ((r: RegistryReplication) => void) | null = null;
  /** Resolves once the replica has taken what it was sent so far (bounded by the replica's side): bulk work waits. */
  replicaTookAll: () => Promise<void> = async () => {};

  /**
   * Tell `fn` what a replica must reload after every change, once committed: the devices set since the last call and
   * the changes announced, gathered per microtask (a slice of an import is one message, not thousands). `caughtUp`:
   * resolves once the replica has taken what it was sent so far; bulk work waits for it between slices.
   */
  replicateTo(fn: (r: RegistryReplication) => void, caughtUp?: () => Promise<void>): void {
    this.replicator = fn;
    if (caughtUp) this.replicaTookAll = caughtUp;
    this.entries.onSet = (id) => this.noteReplication(undefined, id);
  }

  private noteReplication(change?: RegistryChange, deviceId?: string): void {
    if (!this.replicator) return;
    if (!this.replication) {
      const r: RegistryReplication = { deviceIds: [], residentIds: [], changes: [], entries: [] };
      this.replication = r;
      queueMicrotask(() => {
        this.replication = null;
        r.entries = this.entriesFor(r.deviceIds);
        this.replicator?.(r);
      });
    }
    if (deviceId !== undefined) this.replication.deviceIds.push(deviceId);
    if (change) {
      this.replication.changes.push(change);
      if ('residentId' in change) this.replication.residentIds.push(change.residentId);
      else this.replication.deviceIds.push(change.deviceId);
    }
  }

  /** The entries and account keys of `ids` as held now, for a replica. */
  private entriesFor(deviceIds: readonly string[]): NonNullable<RegistryReplication['entries']> {
    const ids = [...new Set(deviceIds)];
    const held = new Set(ids);
    const keysOf = new Map<string, string[]>();
    if (held.size) for (const [key, holder] of this.accounts) if (held.has(holder)) keysOf.set(holder, [...(keysOf.get(holder) ?? []), key]);
    return ids.map((id) => [id, this.entries.get(id) ?? null, keysOf.get(id) ?? []]);
  }

  /** A replica: take what the main thread's registry changed (rows committed before it was sent), then announce. */
  replicate(r: RegistryReplication): void {
    const residentRow = this.sqlite.prepare<[string], { unit_id: string | null }>('SELECT unit_id FROM residents WHERE id = ?');
    const residentIds = new Set(r.residentIds);
    if (residentIds.size) {
      // one pass over the devices for all the residents changed (an import of residents is thousands of them)
      const devicesOf = new Map<string, DeviceEntry[]>();
      for (const e of this.entries.values()) {
        if (e.residentId && residentIds.has(e.residentId)) devicesOf.set(e.residentId, [...(devicesOf.get(e.residentId) ?? []), e]);
      }
      for (const id of residentIds) {
        const row = residentRow.get(id);
        if (row) this.residentUnit.set(id, row.unit_id);
        else this.residentUnit.delete(id);
        for (const e of devicesOf.get(id) ?? []) e.unitId = row?.unit_id ?? null;
      }
    }
    // the account keys these devices held here (one pass over the accounts), dropped, then those they hold now
    const held = new Set(r.entries.map(([id]) => id));
    const stale: string[] = [];
    for (const [key, holder] of this.accounts) if (held.has(holder)) stale.push(key);
    for (const key of stale) this.accounts.delete(key);
    for (const [id, entry, keys] of r.entries) {
      if (!entry) {
        this.entries.delete(id);
        continue;
      }
      if (entry.residentId) this.residentUnit.set(entry.residentId, entry.unitId);
      this.entries.set(id, entry);
      for (const key of keys) this.accounts.set(key, id);
    }
    for (const c of r.changes) for (const l of this.listeners) l(c);
  }

  /**
   * Rows another node changed, now in this file (cluster mode: core/shared-tables.ts): what memory holds of them is
   * read again and the changes announced (rules, the writer thread's copy), as if they had been made here.
   */
  reload(deviceIds: Iterable<string>, residentIds: Iterable<string>): void {
    const residentRow = this.sqlite.prepare<[string], { unit_id: string | null }>('SELECT unit_id FROM residents WHERE id = ?');
    const residentSet = new Set(residentIds);
    if (residentSet.size) {
      for (const id of residentSet) {
        const row = residentRow.get(id);
        if (row) this.residentUnit.set(id, row.unit_id);
        else this.residentUnit.delete(id);
      }
      for (const e of this.entries.values()) if (e.residentId && residentSet.has(e.residentId)) e.unitId = this.residentUnit.get(e.residentId) ?? null;
    }
    const deviceSet = new Set(deviceIds);
    const revoked: { deviceId: string; reason: string }[] = [];
    const anew = new Map<string, 'in service' | 'rebound'>();
    if (deviceSet.size) {
      const stale: string[] = [];
      for (const [key, holder] of this.accounts) if (deviceSet.has(holder)) stale.push(key);
      for (const key of stale) this.accounts.delete(key);
      for (const id of deviceSet) {
        const before = this.entries.get(id);
        const d = this.db.select().from(devices).where(eq(devices.id, id)).get();
        if (!d) {
          this.entries.delete(id);
          this.noteReplication(undefined, id);
          if (before) revoked.push({ deviceId: id, reason: 'removed' });
          continue;
        }
        this.entries.set(id, this.toEntry(d));
        if (before?.test && !d.test) anew.set(id, 'in service');
        else if (before && before.residentId !== d.residentId) anew.set(id, 'rebound');
        if (d.accountScheme && d.account) this.accounts.set(`${d.accountScheme} ${d.account}`, d.id);
        // revoked on another node: this node's connections of the device are cut too (its protocol terminals; the
        // cluster's MQTT connections once more, harmless)
        if (before && before.secretHash !== d.secretHash) revoked.push({ deviceId: id, reason: 'secret rotated' });
        else if (before && before.state !== d.state && (d.state === 'suspended' || d.state === 'decommissioned')) revoked.push({ deviceId: id, reason: d.state });
      }
    }
    for (const r of revoked) this.bus.emit('device-revoked', r);
    for (const id of residentSet) this.changed({ residentId: id });
    for (const id of deviceSet) {
      const why = anew.get(id);
      this.changed(why ? { deviceId: id, anew: why } : { deviceId: id });
    }
  }

  entry(id: string): DeviceEntry | undefined {
    return this.entries.get(id);
  }


  size(): number {
    return this.entries.size;
  }

  allEntries(): IterableIterator<DeviceEntry> {
    return this.entries.values();
  }

  /** Why a device may not connect, or undefined when it may. Costs one HMAC: microseconds. */
  authenticate(id: string, secret: Buffer | string | undefined): 'ok' | 'unknown-device' | 'bad-secret' | 'suspended' | 'decommissioned' {
    const e = this.entries.get(id);
    if (!e) return 'unknown-device';
    if (!this.hasher.verify(secret, e.secretHash)) return 'bad-secret';
    if (e.state === 'suspended') return 'suspended';
    if (e.state === 'decommissioned') return 'decommissioned';
    return 'ok';
  }

  provision(input: ProvisionInput): { device: DeviceRow; secret: string } {
    const [result] = this.provisionMany([input]);
    return result!;
  }

  /** All-or-nothing: a factory delivery either goes in whole or reports every bad line. */
  provisionMany(inputs: ProvisionInput[]): { device: DeviceRow; secret: string }[] {
    const problems: string[] = [];
    const seen = new Set<string>();
    inputs.forEach((input, i) => {
      const where = inputs.length > 1 ? `line ${i + 2}: ` : '';
      if (!DEVICE_KINDS.includes(input.kind)) problems.push(`${where}kind "${input.kind}" is not one of ${DEVICE_KINDS.join(', ')}`);
      if (!SERIAL_RE.test(input.serial ?? '')) problems.push(`${where}serial "${input.serial ?? ''}" must be 3–64 letters, digits or . _ : -`);
      if (seen.has(input.serial)) problems.push(`${where}serial "${input.serial}" appears twice`);
      seen.add(input.serial);
    });
    if (problems.length) throw new ValidationError(problems.join('; '), { problems });
    const now = Date.now();
    const created = this.db.transaction((tx) => {
      const dupes: string[] = [];
      for (const input of inputs) {
        if (tx.select({ id: devices.id }).from(devices).where(eq(devices.serial, input.serial)).get()) dupes.push(input.serial);
      }
      if (dupes.length) {
        throw new ConflictError(`already provisioned: ${dupes.slice(0, 20).join(', ')}${dupes.length > 20 ? ` and ${dupes.length - 20} more` : ''}`, { serials: dupes });
      }
      const out: { device: DeviceRow; secret: string }[] = [];
      for (const input of inputs) {
        const secret = newCsvSafeSecret();
        const row: DeviceRow = {
          id: newDeviceId(input.kind),
          kind: input.kind,
          serial: input.serial,
          model: input.model ?? null,
          firmware: input.firmware ?? null,
          state: 'provisioned',
          residentId: null,
          secretHash: this.hasher.hash(secret),
          secretRotatedAt: now,
          power: input.power ?? (input.kind === 'modbus' || input.kind === 'receiver' || input.kind === 'dc09' ? 'mains' : 'battery'),
          config: {},
          notes: null,
          accountScheme: null,
          account: null,
          importId: null,
          test: input.test ?? false,
          createdAt: now,
          updatedAt: now,
        };
        tx.insert(devices).values(row).run();
        tx.insert(deviceState).values({ deviceId: row.id, updatedAt: now }).run();
        out.push({ device: row, secret });
      }
      return out;
    }, { behavior: 'immediate' });
    // only once committed does the hot path learn of them
    for (const { device } of created) this.entries.set(device.id, this.toEntry(device));
    return created;
  }

  /**
   * A factory delivery (rows checked by parseDeviceCsv), all or nothing, without holding the event loop: existing
   * serials are looked up, secrets made and hashed, and rows written, each in slices of a few milliseconds with a turn
   * of the event loop between. Rows are written in short transactions marked with the import's id, invisible (not
   * listed, not found, unable to connect) until one short transaction turns the import 'done'. Should anything fail,
   * the rows written so far are deleted; after a crash, start-up deletes them. One import at a time: the next waits
   * its turn (IMPORTS_WAITING of them; beyond that, refused), and its serials are checked after the one before it.
   */
  async importDevices(rows: ImportRow[], actor: string, opts: { test?: boolean } = {}): Promise<{ importId: string; created: { device: DeviceRow; secret: string }[]; writeMs: number; longestSliceMs: number }> {
    // the one running and those waiting their turn
    if (this.importTurns.activeCount + this.importTurns.pendingCount > IMPORTS_WAITING) {
      throw new ConflictError(`another device import is running and ${this.importTurns.pendingCount} more are waiting their turn: try again when they have finished`);
    }
    return this.importTurns(() => this.importNow(rows, actor, opts));
  }

  /** imports take turns: one at a time, the next once the one before has ended (however it ended) */
  private readonly importTurns = pLimit(1);

  private async importNow(rows: ImportRow[], actor: string, opts: { test?: boolean }): Promise<{ importId: string; created: { device: DeviceRow; secret: string }[]; writeMs: number; longestSliceMs: number }> {
    this.importing = true;
    const importId = newId('imp');
    let started = false;
    try {
      // 1. serials already provisioned: every one named, nothing written
      const dupes: { serial: string; line: number }[] = [];
      const findSerials = this.sqlite.prepare(`SELECT serial FROM devices WHERE serial IN (SELECT value FROM json_each(?))`).pluck();
      const lineOf = new Map(rows.map((r) => [r.serial, r.line]));
      await inSlices(rows.length, (from) => {
        const to = Math.min(rows.length, from + 500);
        for (const serial of findSerials.all(JSON.stringify(rows.slice(from, to).map((r) => r.serial))) as string[]) {
          dupes.push({ serial, line: lineOf.get(serial)! });
        }
        return to;
      });
      if (dupes.length) {
        dupes.sort((a, b) => a.line - b.line);
        const named = dupes.slice(0, 20).map((d) => `line ${d.line}: ${d.serial}`).join(', ');
        throw new ConflictError(`nothing was imported: already provisioned: ${named}${dupes.length > 20 ? ` and ${dupes.length - 20} more (details.serials)` : ''}`,
          { serials: dupes.map((d) => d.serial), badLines: dupes.map((d) => d.line) });
      }
      // 2. ids and secrets, hashed (HMAC: microseconds each, but 50,000 of them are not)
      const now = Date.now();
      const created: { device: DeviceRow; secret: string }[] = new Array(rows.length);
      await inSlices(rows.length, (from, deadline) => untilDeadline(from, rows.length, deadline, (i) => {
        const input = rows[i]!;
        const secret = newCsvSafeSecret();
        created[i] = {
          secret,
          device: {
            id: newDeviceId(input.kind), kind: input.kind, serial: input.serial, model: input.model ?? null, firmware: input.firmware ?? null,
            state: 'provisioned', residentId: null, secretHash: this.hasher.hash(secret), secretRotatedAt: now,
            power: input.power ?? (input.kind === 'modbus' || input.kind === 'receiver' || input.kind === 'dc09' ? 'mains' : 'battery'),
            config: {}, notes: null, accountScheme: null, account: null, importId, test: opts.test ?? false, createdAt: now, updatedAt: now,
          },
        };
      }));
      // 3. rows in short transactions, invisible until the import is done. A crash mid-way leaves nothing durable
      // that matters, so the slices commit without fsync (synchronous=NORMAL in WAL); the final commit is FULL.
      // each write of the import takes the lock without holding the event loop (core/db.ts); its rows are invisible
      // until done, and the memory changes only after that one row is committed
      await writeWhenFree(this.sqlite, () => this.sqlite.prepare(`INSERT INTO device_imports (id, status, count, actor, started_at) VALUES (?, 'importing', ?, ?, ?)`).run(importId, rows.length, actor, now));
      started = true;
      const insert = this.sqlite.prepare(`INSERT INTO devices (id, kind, serial, model, firmware, state, resident_id, secret_hash,
          secret_rotated_at, power, config, notes, account_scheme, account, import_id, test, created_at, updated_at)
        VALUES (?, ?, ?, ?, ?, 'provisioned', NULL, ?, ?, ?, '{}', NULL, NULL, NULL, ?, ?, ?, ?)`);
      const slice = this.sqlite.transaction((from: number, deadline: number) => untilDeadline(from, created.length, deadline, (i) => {
        const d = created[i]!.device;
        insert.run(d.id, d.kind, d.serial, d.model, d.firmware, d.secretHash, now, d.power, importId, d.test ? 1 : 0, now, now);
      }));
      const t0 = performance.now();
      let longestSliceMs = 0;
      try {
        await inSlices(created.length, (from, deadline) => {
          const s0 = performance.now();
          this.sqlite.pragma('synchronous = NORMAL');
          try {
            return slice.immediate(from, deadline);
          } finally {
            this.sqlite.pragma('synchronous = FULL');
            longestSliceMs = Math.max(longestSliceMs, performance.now() - s0);
          }
        }, { before: () => whenFree(this.sqlite) });
      } catch (err) {
        // a serial provisioned meanwhile by someone else: the whole import is refused
        if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
          throw new ConflictError(`nothing was imported: a serial of this file was provisioned by someone else while it was being imported (${(err as Error).message}); send it again`);
        }
        throw err;
      }
      // 4. the one moment it becomes real: one row
      await writeWhenFree(this.sqlite, () => this.sqlite.prepare(`UPDATE device_imports SET status = 'done', finished_at = ? WHERE id = ?`).run(Date.now(), importId));
      const writeMs = performance.now() - t0;
      started = false;
      // each slice is one replication message to the writer thread: the next waits until the writer has taken the
      // last, so that an alarm posted meanwhile waits behind one slice's worth, not the import's (a small import, one
      // slice, waits for nothing)
      await inSlices(created.length, (from, deadline) => untilDeadline(from, created.length, deadline, (i) => {
        const d = created[i]!.device;
        this.entries.set(d.id, this.toEntry(d));
      }), { between: () => this.replicaTookAll() });
      return { importId, created, writeMs, longestSliceMs };
    } catch (err) {
      if (started) await this.discardImport(importId, err);
      throw err;
    } finally {
      this.importing = false;
    }
  }

  /** Delete what a failed import wrote, in slices; if the process dies meanwhile, start-up finishes the job. */
  private async discardImport(importId: string, why: unknown): Promise<void> {
    await writeWhenFree(this.sqlite, () => this.sqlite.prepare(`UPDATE device_imports SET status = 'failed', error = ? WHERE id = ?`).run(String((why as Error)?.message ?? why).slice(0, 500), importId));
    const del = this.sqlite.prepare('DELETE FROM devices WHERE rowid IN (SELECT rowid FROM devices WHERE import_id = ? LIMIT 500)');
    for (;;) {
      if ((await writeWhenFree(this.sqlite, () => del.run(importId))).changes === 0) break;
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await writeWhenFree(this.sqlite, () => this.sqlite.prepare(`UPDATE device_imports SET status = 'abandoned', finished_at = ? WHERE id = ?`).run(Date.now(), importId));
  }

  /** True while an import is writing (GET /healthz-style status for operators). */
  importRunning(): boolean {
    return this.importing;
  }

  get(id: string): DeviceRow {
    const row = this.db.select().from(devices).where(and(eq(devices.id, id), notPending())).get();
    if (!row) throw new NotFoundError('device', id);
    return row;
  }

  list(filter: DeviceFilter & { limit: number; offset: number }): { items: DeviceRow[]; total: number } {
    const where = this.listWhere(filter);
    const items = this.db.select().from(devices).where(where).orderBy(desc(devices.createdAt), devices.id).limit(filter.limit).offset(filter.offset).all();
    const total = this.db.select({ n: sql<number>`count(*)` }).from(devices).where(where).get()!.n;
    return { items, total };
  }

  /**
   * The ids of `list`'s page, and the total, without the rows: the API reads the rows a slice at a time
   * (`rowsOf`), each slice in a turn of the event loop of its own. A 1,000-row page read whole through drizzle
   * held this thread ~12 ms in one piece (~20-50 ms with its state and its answer), and with it every device's socket.
   */
  pageIds(filter: DeviceFilter & { limit: number; offset: number }): { ids: string[]; total: number } {
    return this.idsAndTotal(devices, this.listWhere(filter), [desc(devices.createdAt), devices.id], filter);
  }

  /** A page's ids in `order` (raw, without drizzle's row objects) and the count of all that `where` matches. */
  private idsAndTotal(table: typeof devices | typeof residents, where: SQL | undefined, order: (SQL | SQLiteColumn)[], page: { limit: number; offset: number }): { ids: string[]; total: number } {
    const idsQ = this.db.select({ id: table.id }).from(table).where(where)
      .orderBy(...order).limit(page.limit).offset(page.offset).toSQL();
    const countQ = this.db.select({ n: sql<number>`count(*)` }).from(table).where(where).toSQL();
    const ids = this.statement(idsQ.sql, 'pluck').all(...idsQ.params) as string[];
    const total = this.statement(countQ.sql, 'pluck').get(...countQ.params) as number;
    return { ids, total };
  }

  /**
   * The ids of every device `list` would give, in its order: a filter over the whole fleet (live state, in memory) reads
   * these, and only its page's rows (100,000 whole rows through drizzle held the event loop ~1 s).
   */
  async listIds(filter: DeviceFilter): Promise<string[]> {
    const where = this.listWhere(filter);
    const read = (more: SQL | undefined, limit: number) => {
      const { sql: text, params } = this.db.select({ id: devices.id, at: devices.createdAt }).from(devices).where(and(where, more))
        .orderBy(desc(devices.createdAt), devices.id).limit(limit).toSQL();
      return this.statement(text, 'raw').all(...params) as [string, number][];
    };
    // A page of ids a turn, read from the list's index (devices_list_idx) after the last one read, never by OFFSET: all
    // 100,000 in one turn held every socket ~50 ms (~250 ms as drizzle's row objects), and OFFSET made the last pages
    // walk the whole index again. After (at, id): the rest of `at`'s ids above id, then what is older than `at`.
    const ids: string[] = [];
    let page = read(undefined, LIST_IDS_PAGE);
    for (;;) {
      for (const [id] of page) ids.push(id);
      if (page.length < LIST_IDS_PAGE) return ids;
      await new Promise((r) => setImmediate(r));
      const [lastId, lastAt] = page[page.length - 1]!;
      page = read(and(eq(devices.createdAt, lastAt), gt(devices.id, lastId)), LIST_IDS_PAGE);
      if (page.length < LIST_IDS_PAGE) page = page.concat(read(lt(devices.createdAt, lastAt), LIST_IDS_PAGE - page.length));
    }
  }

  /** These devices' rows, in the order given (an id no longer there is left out). */
  readonly rowsOf: RowsByIds<DeviceRow>;
  private readonly residentRowsOf: RowsByIds<ResidentRow>;

  private listWhere(filter: DeviceFilter): SQL | undefined {
    const conds: SQL[] = [notPending()];
    if (filter.kind) conds.push(eq(devices.kind, filter.kind as DeviceKind));
    if (filter.state) conds.push(eq(devices.state, filter.state as DeviceLifecycle));
    if (filter.residentId) conds.push(eq(devices.residentId, filter.residentId));
    if (filter.q) conds.push(or(like(devices.serial, `%${filter.q}%`), like(devices.id, `%${filter.q}%`))!);
    if (filter.scope) {
      // devices of residents in the scope's units; at a root of the network also the unplaced ones (unbound, or
      // bound to a resident with no unit or a unit that does not exist)
      const mine = this.db.select({ id: residents.id }).from(residents).where(inScope(filter.scope));
      // A unit's devices are found through the resident index and their few rows sorted. A root of the network sees
      // nearly the whole fleet: there that index and a sort of every device per page (and per listIds page) cost more
      // than walking the list's index in order, so `+` keeps SQLite off the resident index (without ANALYZE it
      // would take it).
      conds.push(filter.scope.unplaced
        ? sql`(+${devices.residentId} IS NULL OR +${devices.residentId} IN ${mine})`
        : inArray(devices.residentId, mine));
    }
    return and(...conds);
  }

  /** `test: false`: a test run's device becomes a real one (its incidents are real from now on); never set back */
  update(id: string, patch: { model?: string; firmware?: string; notes?: string; power?: 'battery' | 'mains'; config?: Record<string, unknown>; test?: false }): DeviceRow {
    const row = this.get(id);
    const next = { ...patch, updatedAt: Date.now() };
    if (patch.config) next.config = keepReserved(patch.config, row.config);
    this.db.update(devices).set(next).where(eq(devices.id, id)).run();
    const updated = { ...row, ...next };
    this.entries.set(id, this.toEntry(updated));
    this.changed(row.test && !updated.test ? { deviceId: id, anew: 'in service' } : { deviceId: id });
    return updated;
  }

  bind(id: string, residentId: string | null): DeviceRow {
    const row = this.get(id);
    if (row.state === 'decommissioned') throw new ConflictError(`device ${id} is decommissioned: provision a new one`);
    if (residentId) {
      const resident = this.db.select({ id: residents.id, test: residents.test }).from(residents).where(eq(residents.id, residentId)).get();
      if (!resident) throw new NotFoundError('resident', residentId);
      // every incident of a test device is a test incident (never escalated): bound to a person in care, her real
      // alarms would be silent
      if (row.test && !resident.test) {
        throw new ConflictError(`device ${id} is a test run's device (its alarms become test incidents, which are never escalated) and resident ${residentId} is a person in care: `
          + `binding them would make her real alarms silent. Bind a real device, or, if this device is going into service, have an admin clear its test mark first (PATCH /api/devices/${id} {"test": false})`,
        { deviceTest: true, residentTest: false });
      }
    }
    // binding leaves the lifecycle alone: a device is commissioned only when its commissioning test passed
    // (devices/commissioning.ts), not when it is merely bound
    this.db.update(devices).set({ residentId, updatedAt: Date.now() }).where(eq(devices.id, id)).run();
    const updated = { ...row, residentId };
    this.entries.set(id, this.toEntry(updated));
    this.changed(row.residentId !== residentId ? { deviceId: id, anew: 'rebound' } : { deviceId: id });
    return updated;
  }

  /**
   * A new secret; the old one stops working and the device is disconnected at once. It also clears
   * `authCodeIssuedAt` (markTerminalRegistered): a JT/T 808 terminal may register again.
   */
  rotateSecret(id: string): { device: DeviceRow; secret: string } {
    const row = this.get(id);
    if (row.state === 'decommissioned') throw new ConflictError(`device ${id} is decommissioned: provision a new one`);
    const secret = newDeviceSecret();
    const now = Date.now();
    const secretHash = this.hasher.hash(secret);
    const { authCodeIssuedAt: _was, ...config } = row.config;
    this.db.update(devices).set({ secretHash, secretRotatedAt: now, updatedAt: now, config }).where(eq(devices.id, id)).run();
    const updated = { ...row, secretHash, secretRotatedAt: now, updatedAt: now, config };
    this.entries.set(id, this.toEntry(updated));
    this.bus.emit('device-revoked', { deviceId: id, reason: 'secret rotated' });
    return { device: updated, secret };
  }

  /**
   * A protocol terminal proved it holds the secret issued to it (a JT/T 808 0x0102 with its code): recorded in the
   * device's config as `authCodeIssuedAt` (epoch ms) so that, across restarts, the terminal's number may not register
   * again until a person rotates the secret (which clears the mark). Not at issue: the answer carrying the code may
   * be lost, and the terminal must be able to register again until it has it.
   */
  markTerminalRegistered(id: string): DeviceRow {
    const row = this.get(id);
    const now = Date.now();
    const config = { ...row.config, [TERMINAL_REGISTERED_KEY]: now };
    this.db.update(devices).set({ config, updatedAt: now }).where(eq(devices.id, id)).run();
    const updated = { ...row, config, updatedAt: now };
    this.entries.set(id, this.toEntry(updated));
    return updated;
  }

  setState(id: string, state: DeviceLifecycle): DeviceRow {
    const row = this.get(id);
    if (row.state === 'decommissioned' && state !== 'decommissioned') {
      throw new ConflictError(`device ${id} is decommissioned and cannot become ${state}`, { state: row.state });
    }
    if (row.state === state) return row;
    this.db.update(devices).set({ state, updatedAt: Date.now() }).where(eq(devices.id, id)).run();
    const updated = { ...row, state };
    this.entries.set(id, this.toEntry(updated));
    if (state === 'suspended' || state === 'decommissioned') {
      this.bus.emit('device-revoked', { deviceId: id, reason: state });
    }
    // a decommissioned device gives its account identifier back: the next device may take it
    if (state === 'decommissioned' && row.accountScheme && row.account) {
      this.db.update(devices).set({ accountScheme: null, account: null }).where(eq(devices.id, id)).run();
      this.accounts.delete(`${row.accountScheme} ${row.account}`);
      this.changed({ deviceId: id });
      return { ...updated, accountScheme: null, account: null };
    }
    this.changed({ deviceId: id });
    return updated;
  }

  /**
   * Give a device an account identifier (or take it away with null). Unique per scheme across the registry, enforced
   * by the database: a conflict is a ConflictError naming the device that holds it. A Contact ID account that is
   * another device's serial is refused too (the receiver would otherwise route that device's alarms here).
   */
  setAccount(id: string, account: DeviceAccount | null): { device: DeviceRow; before: DeviceAccount | null } {
    const row = this.get(id);
    const before = row.accountScheme && row.account ? { scheme: row.accountScheme, id: row.account } : null;
    if (account && row.state === 'decommissioned') throw new ConflictError(`device ${id} is decommissioned: it cannot take an account`);
    if (account) {
      const holder = this.accounts.get(`${account.scheme} ${account.id}`);
      if (holder && holder !== id) {
        throw new ConflictError(`${account.scheme} account "${account.id}" belongs to device ${holder}: take it from that device first (PATCH /api/devices/${holder} {"account": null})`, { heldBy: holder });
      }
      if (account.scheme === 'contact-id') {
        const bySerial = this.db.select({ id: devices.id }).from(devices)
          .where(and(eq(devices.serial, account.id), ne(devices.id, id), ne(devices.state, 'decommissioned'), notPending())).get();
        if (bySerial) throw new ConflictError(`contact-id account "${account.id}" is the serial of device ${bySerial.id}, whose receiver alarms arrive under it`, { heldBy: bySerial.id });
      }
    }
    const now = Date.now();
    try {
      this.db.update(devices).set({ accountScheme: account?.scheme ?? null, account: account?.id ?? null, updatedAt: now }).where(eq(devices.id, id)).run();
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_UNIQUE' && account) {
        const other = this.db.select({ id: devices.id }).from(devices).where(and(eq(devices.accountScheme, account.scheme), eq(devices.account, account.id))).get();
        throw new ConflictError(`${account.scheme} account "${account.id}" belongs to device ${other?.id ?? '(another device)'}`, { heldBy: other?.id });
      }
      throw err;
    }
    if (before) this.accounts.delete(`${before.scheme} ${before.id}`);
    if (account) this.accounts.set(`${account.scheme} ${account.id}`, id);
    this.changed({ deviceId: id });
    return { device: { ...row, accountScheme: account?.scheme ?? null, account: account?.id ?? null, updatedAt: now }, before };
  }

  /**
   * The device a terminal protocol's own identifier stands for (gateway/protocols): a device of that kind whose serial
   * it is, or any device holding it as an account of that protocol's scheme. Decommissioned devices and devices of an
   * import still running are not found. Watch ids and JT/T 808 numbers are digits; DC-09 accounts are hex, compared
   * case-insensitively.
   */
  protocolDevice(kind: 'watch' | 'jt808' | 'dc09', identifier: string): DeviceRow | undefined {
    // DC-09 accounts as sent, in capitals, in small letters: each an index lookup (COLLATE NOCASE would scan)
    const spellings = kind === 'dc09' ? [...new Set([identifier, identifier.toUpperCase(), identifier.toLowerCase()])] : [identifier];
    for (const id of spellings) {
      const held = this.accounts.get(`${kind} ${id}`);
      const row = held
        ? this.db.select().from(devices).where(and(eq(devices.id, held), notPending())).get()
        : this.db.select().from(devices).where(and(eq(devices.serial, id), eq(devices.kind, kind), notPending())).get();
      if (row && row.state !== 'decommissioned') return row;
    }
    return undefined;
  }

  /** First real message from a commissioned device puts it in service. */
  markInService(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.state !== 'commissioned') return;
    e.state = 'in-service';
    this.db.update(devices).set({ state: 'in-service', updatedAt: Date.now() }).where(eq(devices.id, id)).run();
    this.noteReplication(undefined, id);
  }

  /**
   * The device an account stands for: the one holding it (PATCH /api/devices/:id {"account": "1234"}, admins only;
   * unique, so never two), else for Contact ID the device whose serial it is.
   */
  deviceForAccount(account: string, scheme: AccountScheme = 'contact-id'): string | undefined {
    const held = this.accounts.get(`${scheme} ${account}`);
    if (held) return held;
    if (scheme !== 'contact-id') return undefined;
    const row = this.db.select({ id: devices.id, state: devices.state }).from(devices).where(and(eq(devices.serial, account), notPending())).get();
    return row && row.state !== 'decommissioned' ? row.id : undefined;
  }

  // ---- residents ------------------------------------------------------------------------------------------

  createResident(input: ResidentInput): ResidentRow {
    const now = Date.now();
    const row: ResidentRow = {
      id: newId('r'),
      name: input.name,
      address: input.address ?? null,
      unitId: input.unitId ?? null,
      contacts: input.contacts ?? [],
      safeZone: input.safeZone ?? null,
      home: input.home ?? null,
      noMovementSeconds: input.noMovementSeconds ?? null,
      checkInBy: input.checkInBy ?? null,
      notes: input.notes ?? null,
      test: input.test ?? false,
      createdAt: now,
      updatedAt: now,
    };
    this.db.insert(residents).values(row).run();
    this.residentUnit.set(row.id, row.unitId);
    return row;
  }

  /** a resident's grid unit as held in memory (every resident, kept as they change); undefined: no such resident */
  residentUnitOf(id: string): string | null | undefined {
    return this.residentUnit.get(id);
  }

  getResident(id: string): ResidentRow {
    const row = this.db.select().from(residents).where(eq(residents.id, id)).get();
    if (!row) throw new NotFoundError('resident', id);
    return row;
  }

  updateResident(id: string, patch: Partial<ResidentInput>): ResidentRow {
    const row = this.getResident(id);
    const next = { ...patch, updatedAt: Date.now() };
    this.db.update(residents).set(next).where(eq(residents.id, id)).run();
    if (patch.unitId !== undefined) {
      this.residentUnit.set(id, patch.unitId ?? null);
      for (const e of this.entries.values()) if (e.residentId === id) e.unitId = patch.unitId ?? null;
    }
    this.changed({ residentId: id });
    return { ...row, ...next } as ResidentRow;
  }

  /** A page of residents, its rows read a slice at a time (core/page-slices.ts) */
  async listResidents(filter: { scope?: UnitScope | null; q?: string; limit: number; offset: number }): Promise<{ items: ResidentRow[]; total: number }> {
    const conds: SQL[] = [];
    if (filter.scope) conds.push(inScope(filter.scope));
    if (filter.q) {
      // by name or address; % and _ typed by a person are letters, not wildcards
      const pattern = `%${filter.q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
      conds.push(or(sql`${residents.name} LIKE ${pattern} ESCAPE '\\'`, sql`${residents.address} LIKE ${pattern} ESCAPE '\\'`)!);
    }
    const where = conds.length ? and(...conds) : undefined;
    const { ids, total } = this.idsAndTotal(residents, where, [residents.name, residents.id], filter);
    return { items: await inPageSlices(ids, this.residentRowsOf), total };
  }
}

export interface ResidentInput {
  name: string;
  address?: string | null;
  unitId?: string | null;
  contacts?: Contact[];
  safeZone?: SafeZone | null;
  home?: { lat: number; lon: number } | null;
  noMovementSeconds?: number | null;
  checkInBy?: string | null;
  notes?: string | null;
  /** created by a test run: not a person in care */
  test?: boolean;
}

/** Residents within a user's scope: the scope's units, and at a root of the network the unplaced ones. */
function inScope(scope: UnitScope): SQL {
  const mine = scope.unitIds.length ? inArray(residents.unitId, scope.unitIds) : sql`0`;
  if (!scope.unplaced) return mine;
  return or(mine, isNull(residents.unitId), sql`${residents.unitId} NOT IN (SELECT id FROM units)`)!;
}

/** Say at start-up what the registry cleaned or flagged: an import cut short, account claims an admin must settle. */
export function logRegistryStartup(registry: DeviceRegistry, log: { warn(obj: object, msg: string): void }): void {
  for (const imp of registry.startupNotes.abandonedImports) {
    log.warn({ importId: imp.id, count: imp.count }, 'a device import was cut short (the gateway stopped during it): its devices were removed; import the file again');
  }
  for (const c of registry.startupNotes.accountConflicts) {
    log.warn({ deviceId: c.deviceId, account: c.account }, 'this device claimed a Contact ID account an older device holds: its claim was dropped (config.accountConflict); an admin must set the right device\'s account');
  }
}
