// The device registry: provisioning, binding, credentials and lifecycle. Keeps a small in-memory entry per device so
// that authentication and ingest never touch the disk on the hot path.
import { and, desc, eq, inArray, isNull, like, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../core/db.js';
import type { Bus } from '../core/bus.js';
import type { UnitScope } from '../core/unit-scope.js';
import { DEVICE_KINDS, type DeviceKind, type DeviceLifecycle } from '../core/contracts.js';
import { ConflictError, NotFoundError, ValidationError } from '../core/errors.js';
import { devices, deviceState, residents } from './schema.js';
import { newDeviceId, newDeviceSecret, newId, type SecretHasher } from './credentials.js';
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
}

/** Something about a device or a resident changed that rules depend on (binding, lifecycle, resident's zone). */
export type RegistryChange = { deviceId: string } | { residentId: string };

export type DeviceRow = typeof devices.$inferSelect;
export type ResidentRow = typeof residents.$inferSelect;

export interface ProvisionInput {
  kind: DeviceKind;
  serial: string;
  model?: string;
  firmware?: string;
  power?: 'battery' | 'mains';
}

const SERIAL_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{2,63}$/;

export class DeviceRegistry {
  private readonly entries = new Map<string, DeviceEntry>();
  private readonly residentUnit = new Map<string, string | null>();

  constructor(
    private readonly db: Db,
    private readonly hasher: SecretHasher,
    private readonly bus: Bus,
  ) {
    for (const r of db.select({ id: residents.id, unitId: residents.unitId }).from(residents).all()) {
      this.residentUnit.set(r.id, r.unitId);
    }
    for (const d of db.select().from(devices).all()) this.entries.set(d.id, this.toEntry(d));
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
    };
  }

  private readonly listeners: ((change: RegistryChange) => void)[] = [];
  onChange(listener: (change: RegistryChange) => void): void {
    this.listeners.push(listener);
  }
  private changed(change: RegistryChange): void {
    for (const l of this.listeners) l(change);
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
        const secret = newDeviceSecret();
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
          power: input.power ?? (input.kind === 'modbus' || input.kind === 'receiver' ? 'mains' : 'battery'),
          config: {},
          notes: null,
          createdAt: now,
          updatedAt: now,
        };
        tx.insert(devices).values(row).run();
        tx.insert(deviceState).values({ deviceId: row.id, updatedAt: now }).run();
        out.push({ device: row, secret });
      }
      return out;
    });
    // only once committed does the hot path learn of them
    for (const { device } of created) this.entries.set(device.id, this.toEntry(device));
    return created;
  }

  /** Parse a factory CSV (`serial,kind[,model,firmware]` with a header line) into provisioning inputs. */
  static parseCsv(text: string, defaultKind?: DeviceKind): ProvisionInput[] {
    const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l.length > 0 && !l.startsWith('#'));
    if (lines.length === 0) throw new ValidationError('the CSV is empty: send a header line "serial,kind,model,firmware" and one device per line');
    const header = lines[0]!.split(',').map((h) => h.trim().toLowerCase());
    const col = (name: string) => header.indexOf(name);
    if (col('serial') < 0) throw new ValidationError('the CSV header must name a "serial" column (e.g. "serial,kind,model,firmware")');
    if (col('kind') < 0 && !defaultKind) throw new ValidationError('the CSV needs a "kind" column, or ?kind= in the URL');
    if (lines.length - 1 > 50_000) throw new ValidationError('at most 50,000 devices per import: split the file');
    return lines.slice(1).map((line) => {
      const cells = line.split(',').map((c) => c.trim());
      const get = (name: string) => (col(name) >= 0 ? cells[col(name)] || undefined : undefined);
      return {
        serial: get('serial') ?? '',
        kind: (get('kind') ?? defaultKind) as DeviceKind,
        model: get('model'),
        firmware: get('firmware'),
        power: get('power') as 'battery' | 'mains' | undefined,
      };
    });
  }

  get(id: string): DeviceRow {
    const row = this.db.select().from(devices).where(eq(devices.id, id)).get();
    if (!row) throw new NotFoundError('device', id);
    return row;
  }

  list(filter: {
    kind?: string; state?: string; residentId?: string; scope?: UnitScope | null; q?: string; limit: number; offset: number;
  }): { items: DeviceRow[]; total: number } {
    const conds: SQL[] = [];
    if (filter.kind) conds.push(eq(devices.kind, filter.kind as DeviceKind));
    if (filter.state) conds.push(eq(devices.state, filter.state as DeviceLifecycle));
    if (filter.residentId) conds.push(eq(devices.residentId, filter.residentId));
    if (filter.q) conds.push(or(like(devices.serial, `%${filter.q}%`), like(devices.id, `%${filter.q}%`))!);
    if (filter.scope) {
      // devices of residents in the scope's units; at a root of the network also the unplaced ones (unbound, or
      // bound to a resident with no unit or a unit that does not exist)
      const mine = this.db.select({ id: residents.id }).from(residents).where(inScope(filter.scope));
      conds.push(filter.scope.unplaced ? or(isNull(devices.residentId), inArray(devices.residentId, mine))! : inArray(devices.residentId, mine));
    }
    const where = conds.length ? and(...conds) : undefined;
    const items = this.db.select().from(devices).where(where).orderBy(desc(devices.createdAt), devices.id).limit(filter.limit).offset(filter.offset).all();
    const total = this.db.select({ n: sql<number>`count(*)` }).from(devices).where(where).get()!.n;
    return { items, total };
  }

  update(id: string, patch: { model?: string; firmware?: string; notes?: string; power?: 'battery' | 'mains'; config?: Record<string, unknown> }): DeviceRow {
    const row = this.get(id);
    const next = { ...patch, updatedAt: Date.now() };
    this.db.update(devices).set(next).where(eq(devices.id, id)).run();
    const updated = { ...row, ...next };
    this.entries.set(id, this.toEntry(updated));
    this.changed({ deviceId: id });
    return updated;
  }

  bind(id: string, residentId: string | null): DeviceRow {
    const row = this.get(id);
    if (row.state === 'decommissioned') throw new ConflictError(`device ${id} is decommissioned: provision a new one`);
    if (residentId && !this.db.select({ id: residents.id }).from(residents).where(eq(residents.id, residentId)).get()) {
      throw new NotFoundError('resident', residentId);
    }
    const state: DeviceLifecycle = residentId && row.state === 'provisioned' ? 'commissioned' : row.state;
    this.db.update(devices).set({ residentId, state, updatedAt: Date.now() }).where(eq(devices.id, id)).run();
    const updated = { ...row, residentId, state };
    this.entries.set(id, this.toEntry(updated));
    this.changed({ deviceId: id });
    return updated;
  }

  /** A new secret; the old one stops working and the device is disconnected at once. */
  rotateSecret(id: string): { device: DeviceRow; secret: string } {
    const row = this.get(id);
    if (row.state === 'decommissioned') throw new ConflictError(`device ${id} is decommissioned: provision a new one`);
    const secret = newDeviceSecret();
    const now = Date.now();
    const secretHash = this.hasher.hash(secret);
    this.db.update(devices).set({ secretHash, secretRotatedAt: now, updatedAt: now }).where(eq(devices.id, id)).run();
    const updated = { ...row, secretHash, secretRotatedAt: now, updatedAt: now };
    this.entries.set(id, this.toEntry(updated));
    this.bus.emit('device-revoked', { deviceId: id, reason: 'secret rotated' });
    return { device: updated, secret };
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
    this.changed({ deviceId: id });
    return updated;
  }

  /** First real message from a commissioned device puts it in service. */
  markInService(id: string): void {
    const e = this.entries.get(id);
    if (!e || e.state !== 'commissioned') return;
    e.state = 'in-service';
    this.db.update(devices).set({ state: 'in-service', updatedAt: Date.now() }).where(eq(devices.id, id)).run();
  }

  /**
   * The device a Contact ID account stands for: the one whose `config.account` is that account (set with
   * PATCH /api/devices/:id {"config": {"account": "1234"}}), or whose serial is the account.
   */
  deviceForAccount(account: string): string | undefined {
    for (const e of this.entries.values()) {
      if (e.config.account === account && e.state !== 'decommissioned') return e.id;
    }
    const row = this.db.select({ id: devices.id, state: devices.state }).from(devices).where(eq(devices.serial, account)).get();
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
      createdAt: now,
      updatedAt: now,
    };
    this.db.insert(residents).values(row).run();
    this.residentUnit.set(row.id, row.unitId);
    return row;
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

  listResidents(filter: { scope?: UnitScope | null; q?: string; limit: number; offset: number }): { items: ResidentRow[]; total: number } {
    const conds: SQL[] = [];
    if (filter.scope) conds.push(inScope(filter.scope));
    if (filter.q) conds.push(like(residents.name, `%${filter.q}%`));
    const where = conds.length ? and(...conds) : undefined;
    const items = this.db.select().from(residents).where(where).orderBy(residents.name).limit(filter.limit).offset(filter.offset).all();
    const total = this.db.select({ n: sql<number>`count(*)` }).from(residents).where(where).get()!.n;
    return { items, total };
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
}

/** Residents within a user's scope: the scope's units, and at a root of the network the unplaced ones. */
function inScope(scope: UnitScope): SQL {
  const mine = scope.unitIds.length ? inArray(residents.unitId, scope.unitIds) : sql`0`;
  if (!scope.unplaced) return mine;
  return or(mine, isNull(residents.unitId), sql`${residents.unitId} NOT IN (SELECT id FROM units)`)!;
}
