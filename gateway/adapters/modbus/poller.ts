// One Modbus link (a TCP connection or an RS-485 line to one unit) polled with modbus-serial according to a
// register map. Polls never overlap; each change is handed to the sink in map order and awaited (durable) before
// the next; a link that stops answering is itself an observation (`comm-lost`, once) and its recovery another.
// A unit that answers "no" for one point (an exception: no such register) is answering: that point's fault is a
// `device-fault` of the point's device (once, restored when it reads again), and every other point is polled at the
// normal rate: a refused address is taken out of the read blocks (which are planned again without it) and asked alone
// at the back-off ceiling's rate (retry.maxMs) until it answers, so one bad address costs one request now and then,
// not a failed block and a search through it at every poll. Only silence (timeouts, connection errors, a Modbus
// gateway that cannot reach the unit) is comm-lost.
import ModbusRTUModule from 'modbus-serial';
import type { Logger } from '../../../core/logger.js';
import type { Observation, ObservationSink } from '../../../core/contracts.js';
import type { RegisterMap, RegisterPoint } from './register-map.js';
import type { AdapterMemory } from '../link-state.js';
import { evaluate, planBlocks, pointValue, toObservation, type PointState, type ReadBlock } from './points.js';

// modbus-serial is CommonJS with `module.exports.default = module.exports`; its typings declare only the default
const ModbusRTU = ModbusRTUModule.default ?? (ModbusRTUModule as unknown as typeof ModbusRTUModule.default);
type Client = InstanceType<typeof ModbusRTU>;

export type ModbusTransportOptions =
  | { transport: 'tcp'; host: string; port: number }
  | {
      transport: 'rtu';
      path: string;
      baudRate: number;
      /** default even (MODBUS over Serial Line v1.02 §2.5.1) */
      parity?: 'none' | 'even' | 'odd' | 'mark' | 'space';
      dataBits?: 5 | 6 | 7 | 8;
      stopBits?: 1 | 1.5 | 2;
    };

export interface RetryOptions {
  /** first back-off after a failed poll */
  initialMs: number;
  /** back-off ceiling; a lost link is retried at this rate for as long as it is lost */
  maxMs: number;
  /** consecutive failed polls before the link is reported `comm-lost` */
  failuresBeforeCommLost: number;
  /** ± fraction of each back-off, so that many links that failed together do not retry together */
  jitter: number;
}
export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({
  initialMs: 200,
  maxMs: 5000,
  failuresBeforeCommLost: 3,
  jitter: 0.1,
});

export interface ModbusLinkOptions {
  /** for logs and stats */
  name?: string;
  link: ModbusTransportOptions;
  /** Modbus unit (slave) id: 1–247 on RS-485; TCP devices often answer 1 or 255 */
  unitId: number;
  map: RegisterMap;
  /** poll period; default the map's pollMs */
  pollMs?: number;
  /** how long one request may wait for its answer */
  timeoutMs: number;
  retry?: Partial<RetryOptions>;
  /** the device a point's channel belongs to (bed 2 → that resident's mat); `undefined` for channel-less points */
  deviceFor(channel: string | number | undefined): string;
  sink: ObservationSink;
  log: Logger;
  /** the device that stands for the link itself: it receives comm-lost / comm-restored */
  linkDeviceId: string;
  /** clock, for tests */
  now?: () => number;
  /** what the previous run left (a lost link, points in fault), so that a restart does not forget to restore them */
  memory?: Pick<AdapterMemory, 'commLost' | 'pointFaults'>;
}

export type ModbusLinkState = 'connecting' | 'ok' | 'failing' | 'comm-lost' | 'closed';

export interface ModbusLinkStats {
  name: string;
  state: ModbusLinkState;
  polls: number;
  okPolls: number;
  failedPolls: number;
  consecutiveFailures: number;
  /** Modbus exception responses (the device answered "no") */
  exceptions: number;
  /** points whose device-fault stands (the unit answers an exception for them) */
  pointFaults: string[];
  timeouts: number;
  /** connections (re)opened */
  connects: number;
  observations: number;
  /** submissions the sink refused or failed; the change is retried at the next poll */
  sinkErrors: number;
  commLost: boolean;
  lastError: string | null;
  lastOkAt: number | null;
  /** delay before the next poll (back-off while failing) */
  nextDelayMs: number;
  /** what each poll reads: the map's addresses in the fewest requests, without the refused ones */
  blocks: ReadBlock[];
  /** addresses the unit refuses (`holding:1`), asked alone every retry.maxMs until they answer */
  refusedAddresses: string[];
}

export interface ModbusLink {
  /** stop polling; a poll in progress finishes its durable submissions first */
  close(): Promise<void>;
  stats(): ModbusLinkStats;
}

type Failure =
  | { kind: 'exception'; code: number; message: string; table: string; address: number; length: number }
  /** a Modbus gateway's exception 0A/0B: the unit behind it is not answering — the link is down, not one point */
  | { kind: 'unreachable'; code: number; message: string }
  | { kind: 'timeout'; message: string }
  | { kind: 'transport'; message: string };

/** Modbus Application Protocol v1.1b3 §7: a gateway's path is unavailable / its target did not respond */
const GATEWAY_PATH_UNAVAILABLE = 0x0a;
const GATEWAY_TARGET_NO_RESPONSE = 0x0b;

class GuardTimeout extends Error {
  readonly errno = 'ETIMEDOUT';
}

/** modbus-serial can leave a promise pending forever (a port destroyed mid-request): never await it unbounded. */
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new GuardTimeout(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, guard]).finally(() => clearTimeout(timer));
}

function classify(err: unknown, block?: ReadBlock): Failure {
  const e = err as { modbusCode?: unknown; errno?: unknown; message?: unknown };
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (typeof e?.modbusCode === 'number' && (e.modbusCode === GATEWAY_PATH_UNAVAILABLE || e.modbusCode === GATEWAY_TARGET_NO_RESPONSE)) {
    return { kind: 'unreachable', code: e.modbusCode, message };
  }
  if (typeof e?.modbusCode === 'number' && block) {
    return { kind: 'exception', code: e.modbusCode, message, table: block.table, address: block.start, length: block.length };
  }
  if (e?.errno === 'ETIMEDOUT') return { kind: 'timeout', message };
  return { kind: 'transport', message };
}

export const describeLink = (l: ModbusTransportOptions) =>
  l.transport === 'tcp' ? `tcp://${l.host}:${l.port}` : `rtu:${l.path}@${l.baudRate}`;

/** Start polling one link. Returns at once; the first poll runs immediately in the background. */
export function startModbusLink(opts: ModbusLinkOptions): ModbusLink {
  const retry: RetryOptions = { ...DEFAULT_RETRY, ...opts.retry };
  const now = opts.now ?? Date.now;
  const pollMs = opts.pollMs ?? opts.map.pollMs;
  const name = opts.name ?? `${opts.map.name}@${describeLink(opts.link)}#${opts.unitId}`;
  const log = opts.log.child({ module: 'modbus', link: name, deviceId: opts.linkDeviceId });
  let blocks = planBlocks(opts.map.points);
  const states: (PointState | undefined)[] = opts.map.points.map(() => undefined);
  const requestBudget = opts.timeoutMs + 500;

  const stats: ModbusLinkStats = {
    name,
    state: 'connecting',
    polls: 0,
    okPolls: 0,
    failedPolls: 0,
    consecutiveFailures: 0,
    exceptions: 0,
    pointFaults: [],
    timeouts: 0,
    connects: 0,
    observations: 0,
    sinkErrors: 0,
    commLost: false,
    lastError: null,
    lastOkAt: null,
    nextDelayMs: 0,
    blocks,
    refusedAddresses: [],
  };

  // the previous run's state: a lost link is restored by the first good poll, a point in fault by its first good read
  try {
    if (opts.memory?.commLost(opts.linkDeviceId)) {
      stats.commLost = true;
      log.warn('the Modbus link was lost when the gateway stopped: the first good poll will restore it');
    }
  } catch (err) {
    log.error({ err }, 'could not read the link state left by the previous run; assuming the link was up');
  }
  /** per point: its device-fault is reported and not yet restored */
  const faulted: boolean[] = opts.map.points.map(() => false);
  /** per point: the exception of the last poll, if it had one */
  const pointError: (Extract<Failure, { kind: 'exception' }> | undefined)[] = opts.map.points.map(() => undefined);
  try {
    const byDevice = new Map<string, Set<string>>();
    for (const [i, p] of opts.map.points.entries()) {
      const id = deviceOf(p);
      if (!byDevice.has(id)) byDevice.set(id, new Set(opts.memory?.pointFaults(id, opts.map.name) ?? []));
      faulted[i] = byDevice.get(id)!.has(p.name);
    }
  } catch (err) {
    log.error({ err }, 'could not read the point faults left by the previous run');
  }
  stats.pointFaults = opts.map.points.filter((_, i) => faulted[i]).map((p) => p.name);
  function deviceOf(p: RegisterPoint): string {
    try {
      return opts.deviceFor(p.channel);
    } catch {
      return opts.linkDeviceId;
    }
  }

  const key = (table: string, address: number) => `${table}:${address}`;
  /**
   * Addresses the unit refused (an exception), with the exception and when to ask again: left out of the blocks and
   * read alone at a slower rate (retry.maxMs), since a register the unit lacks is lacking at the next poll too.
   */
  const refusedAt = new Map<string, { table: ReadBlock['table']; address: number; failure: Extract<Failure, { kind: 'exception' }>; probeAt: number }>();
  const replan = () => {
    blocks = planBlocks(opts.map.points.filter((p) => !refusedAt.has(key(p.table, p.address))));
    stats.blocks = blocks;
    stats.refusedAddresses = [...refusedAt.keys()];
  };

  let client: Client | undefined;
  let closed = false;
  let wake: (() => void) | undefined;

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(t);
        resolve();
      };
    });

  async function dispose(c: Client) {
    if (c === client) client = undefined;
    try {
      if (opts.link.transport === 'tcp') {
        c.destroy(() => undefined);
      } else {
        await within(new Promise<void>((resolve) => c.close(() => resolve())), 2000, 'closing the serial port');
      }
    } catch (err) {
      log.debug({ err }, 'closing the Modbus port failed');
    }
  }

  async function connect(): Promise<Client> {
    if (client?.isOpen) return client;
    if (client) await dispose(client);
    const c = new ModbusRTU();
    // without a listener an 'error' event would throw out of the event loop and take the gateway down
    c.on('error', (err: unknown) => log.debug({ err }, 'Modbus port error'));
    const l = opts.link;
    try {
      if (l.transport === 'tcp') {
        await within(c.connectTCP(l.host, { port: l.port }), requestBudget, `connecting to ${describeLink(l)}`);
      } else {
        await within(
          c.connectRTUBuffered(l.path, {
            baudRate: l.baudRate,
            // MODBUS over Serial Line v1.02 §2.5.1: even parity is the default
            parity: l.parity ?? 'even',
            dataBits: l.dataBits ?? 8,
            stopBits: (l.stopBits ?? 1) as number,
          }),
          requestBudget,
          `opening ${describeLink(l)}`,
        );
      }
    } catch (err) {
      await dispose(c);
      throw err;
    }
    if (closed) {
      await dispose(c);
      throw new Error('link closed');
    }
    // set after connecting: modbus-serial would otherwise also make it the TCP socket's idle timeout
    c.setTimeout(opts.timeoutMs);
    c.setID(opts.unitId);
    stats.connects++;
    client = c;
    log.info({ link: describeLink(l), unitId: opts.unitId }, 'Modbus link open');
    return c;
  }

  async function read(c: Client, b: ReadBlock): Promise<(number | boolean)[]> {
    const what = `reading ${b.table} ${b.start}+${b.length}`;
    const request =
      b.table === 'coil' ? c.readCoils(b.start, b.length)
      : b.table === 'discrete' ? c.readDiscreteInputs(b.start, b.length)
      : b.table === 'holding' ? c.readHoldingRegisters(b.start, b.length)
      : c.readInputRegisters(b.start, b.length);
    const result = await within<{ data: (number | boolean)[] }>(request, requestBudget, what);
    // bit reads come back padded to whole bytes
    if (result.data.length < b.length) throw new Error(`${what}: answer has ${result.data.length} values`);
    return result.data.slice(0, b.length);
  }

  let sinkFailing = false;
  async function submit(obs: Observation): Promise<boolean> {
    try {
      await opts.sink.submit(obs);
      stats.observations++;
      if (sinkFailing) log.info('the sink accepts Modbus observations again');
      sinkFailing = false;
      return true;
    } catch (err) {
      stats.sinkErrors++;
      // retried at every poll: say it loudly once, not twice a second
      (sinkFailing ? log.debug : log.error).call(log, { err, type: obs.type, deviceId: obs.deviceId },
        'sink refused a Modbus observation; it is retried at the next poll');
      sinkFailing = true;
      return false;
    }
  }

  function deviceFor(channel: string | number | undefined): { deviceId: string; flags?: string[] } {
    try {
      return { deviceId: opts.deviceFor(channel) };
    } catch (err) {
      // an alarm is never dropped for want of a device mapping: it goes to the link's device, flagged
      log.error({ err, channel }, 'no device for this channel; reported on the link device');
      return { deviceId: opts.linkDeviceId, flags: [`unmapped-channel:${String(channel)}`] };
    }
  }

  /** One poll: read every block, then submit what changed. Returns the first read failure, if any. */
  async function pollOnce(): Promise<Failure | undefined> {
    let c: Client;
    try {
      c = await connect();
    } catch (err) {
      return classify(err);
    }
    // address → raw value
    const values = new Map<string, number | boolean>();
    let failure: Failure | undefined;
    let planChanged = false;
    const refuse = (table: ReadBlock['table'], address: number, f: Extract<Failure, { kind: 'exception' }>) => {
      stats.exceptions++;
      if (!refusedAt.has(key(table, address))) planChanged = true;
      refusedAt.set(key(table, address), { table, address, failure: f, probeAt: now() + retry.maxMs });
    };
    const readInto = async (b: ReadBlock): Promise<Failure | undefined> => {
      try {
        const data = await read(c, b);
        data.forEach((v, k) => values.set(key(b.table, b.start + k), v));
        return undefined;
      } catch (err) {
        return classify(err, b);
      }
    };
    for (const b of blocks) {
      let f = await readInto(b);
      if (f?.kind === 'exception') {
        if (b.length === 1) {
          refuse(b.table, b.start, f);
          continue;
        }
        // one bad address must not blind a whole panel: read the block's addresses one by one to find which (once:
        // the ones found are left out of the blocks from the next poll on)
        stats.exceptions++;
        for (let a = b.start; a < b.start + b.length; a++) {
          const one = await readInto({ table: b.table, start: a, length: 1 });
          if (one?.kind === 'exception') {
            refuse(b.table, a, one);
          } else if (one) {
            f = one;
            break;
          }
        }
        if (f.kind === 'exception') continue;
      }
      if (f) {
        // silence or a broken connection: the line is in doubt, drop it so no late answer is taken for the next request
        failure = f;
        await dispose(c);
        break;
      }
    }
    // the refused addresses whose time has come, each alone: one that answers is back in the blocks
    for (const r of failure ? [] : [...refusedAt.values()]) {
      if (closed || r.probeAt > now() || values.has(key(r.table, r.address))) continue;
      const f = await readInto({ table: r.table, start: r.address, length: 1 });
      if (f?.kind === 'exception') {
        refuse(r.table, r.address, f);
      } else if (f) {
        failure = f;
        await dispose(c);
        break;
      } else {
        refusedAt.delete(key(r.table, r.address));
        planChanged = true;
        log.info({ table: r.table, register: r.address }, 'a refused Modbus address answers again: it is read with its block from now on');
      }
    }
    if (planChanged) replan();
    if (closed) return undefined;
    // what the unit refuses now: asked this poll or not, a refused address stays refused until it answers
    const refused = new Map([...refusedAt].map(([k, r]) => [k, r.failure]));

    // A device whose observation the sink refused gets nothing more this poll (its order is kept; the change is
    // retried next poll), but other devices go on: one unregistered mat must not hold back another bed's alarm.
    const blocked = new Set<string>();
    if (!failure && stats.commLost) {
      const restored = await submit({
        deviceId: opts.linkDeviceId,
        type: 'comm-restored',
        receivedAt: now(),
        source: 'modbus',
        restore: true,
        detail: { unitId: opts.unitId, link: describeLink(opts.link), map: opts.map.name, failures: stats.consecutiveFailures },
      });
      if (restored) {
        stats.commLost = false;
        log.warn('Modbus link restored');
      } else {
        blocked.add(opts.linkDeviceId);
      }
    }

    if (!failure) await pointFaultsOf(refused, values, blocked);

    for (const [i, p] of opts.map.points.entries()) {
      const raw = values.get(key(p.table, p.address));
      if (raw === undefined) continue;
      const value = pointValue(p, raw);
      const { next, emit } = evaluate(p, states[i], value);
      if (emit) {
        const target = deviceFor(p.channel);
        if (blocked.has(target.deviceId)) continue;
        const obs = toObservation(p, { deviceId: target.deviceId, unitId: opts.unitId, map: opts.map, receivedAt: now() }, value, raw, emit);
        if (target.flags) obs.flags = target.flags;
        // durability before moving on; on failure this point keeps its old state and is retried next poll
        if (!(await submit(obs))) {
          blocked.add(target.deviceId);
          continue;
        }
      }
      states[i] = next;
    }
    return failure;
  }

  /**
   * A point the unit refused is that point's fault: one device-fault for its device (P3 card), stored once. It is
   * restored when the point reads again — once no other point of the same device is still refused, since the card
   * is the device's.
   */
  async function pointFaultsOf(
    refused: ReadonlyMap<string, Extract<Failure, { kind: 'exception' }>>,
    values: ReadonlyMap<string, number | boolean>,
    blocked: Set<string>,
  ): Promise<void> {
    const refusedNow = (p: RegisterPoint) => refused.get(`${p.table}:${p.address}`);
    for (const [i, p] of opts.map.points.entries()) {
      const f = refusedNow(p);
      pointError[i] = f;
      if (!f || faulted[i]) continue;
      const target = deviceFor(p.channel);
      if (blocked.has(target.deviceId)) continue;
      // the points of one register on one device (bits of a status word) are one fault
      const same = opts.map.points.flatMap((q, j) =>
        q.table === p.table && q.address === p.address && !faulted[j] && deviceOf(q) === target.deviceId ? [j] : []);
      log.warn({ point: p.name, table: p.table, register: p.address, exceptionCode: f.code, deviceId: target.deviceId },
        'the unit refuses to read this point (Modbus exception): device-fault for this point; the other points are polled as usual');
      const obs: Observation = {
        deviceId: target.deviceId, type: 'device-fault', receivedAt: now(), source: 'modbus',
        detail: {
          point: p.name, points: same.map((j) => opts.map.points[j]!.name), map: opts.map.name, table: p.table, register: p.address, unitId: opts.unitId,
          exceptionCode: f.code, error: f.message, link: describeLink(opts.link),
          reason: `the unit answers exception ${f.code} for ${p.table} ${p.address} (${p.name}): check the register map against the device`,
        },
        ...(target.flags ? { flags: target.flags } : {}),
      };
      if (await submit(obs)) for (const j of same) faulted[j] = true;
      else blocked.add(target.deviceId);
    }
    for (const [i, p] of opts.map.points.entries()) {
      if (!faulted[i] || pointError[i] || !values.has(`${p.table}:${p.address}`)) continue;
      const target = deviceFor(p.channel);
      const others = opts.map.points.some((q, j) => j !== i && faulted[j] && pointError[j] && deviceOf(q) === target.deviceId);
      if (!others) {
        if (blocked.has(target.deviceId)) continue;
        const cleared = opts.map.points.filter((q, j) => faulted[j] && !pointError[j] && deviceOf(q) === target.deviceId).map((q) => q.name);
        const restored = await submit({
          deviceId: target.deviceId, type: 'device-fault', restore: true, receivedAt: now(), source: 'modbus',
          detail: { point: p.name, points: cleared, map: opts.map.name, table: p.table, register: p.address, unitId: opts.unitId, link: describeLink(opts.link) },
        });
        if (!restored) {
          blocked.add(target.deviceId);
          continue;
        }
        for (const [j, q] of opts.map.points.entries()) if (cleared.includes(q.name) && deviceOf(q) === target.deviceId) faulted[j] = false;
        log.info({ points: cleared, deviceId: target.deviceId }, 'the refused points read again: device-fault restored');
      }
    }
    stats.pointFaults = opts.map.points.filter((_, i) => faulted[i]).map((p) => p.name);
  }

  function backoff(failures: number): number {
    const base = Math.min(retry.initialMs * 2 ** Math.min(failures - 1, 30), retry.maxMs);
    return Math.max(1, Math.round(base * (1 + retry.jitter * (Math.random() * 2 - 1))));
  }

  async function loop() {
    while (!closed) {
      const started = now();
      stats.polls++;
      // a bug in one poll must not end supervision of the link: count it as a failed poll and go on
      const failure = await pollOnce().catch((err: unknown) => classify(err));
      if (closed) break;
      if (!failure) {
        stats.okPolls++;
        stats.consecutiveFailures = 0;
        stats.lastOkAt = now();
        stats.state = stats.commLost ? 'comm-lost' : 'ok';
        stats.nextDelayMs = Math.max(0, pollMs - (now() - started));
      } else {
        stats.failedPolls++;
        stats.consecutiveFailures++;
        stats.lastError = failure.kind === 'exception' ? `exception ${failure.code} on ${failure.table} ${failure.address}: ${failure.message}` : failure.message;
        if (failure.kind === 'timeout') stats.timeouts++;
        const logFailure = stats.consecutiveFailures === 1 ? log.warn.bind(log) : log.debug.bind(log);
        logFailure({ failure, failures: stats.consecutiveFailures }, 'Modbus poll failed; retrying with back-off');
        if (stats.consecutiveFailures >= retry.failuresBeforeCommLost && !stats.commLost) {
          const reported = await submit({
            deviceId: opts.linkDeviceId,
            type: 'comm-lost',
            receivedAt: now(),
            source: 'modbus',
            detail: {
              unitId: opts.unitId,
              link: describeLink(opts.link),
              map: opts.map.name,
              failures: stats.consecutiveFailures,
              reason: failure.kind,
              error: failure.message,
              ...(failure.kind === 'unreachable' ? { exceptionCode: failure.code } : {}),
            },
          });
          if (reported) {
            stats.commLost = true;
            log.error({ failure, failures: stats.consecutiveFailures }, 'Modbus link lost');
          }
        }
        stats.state = stats.commLost ? 'comm-lost' : 'failing';
        stats.nextDelayMs = backoff(stats.consecutiveFailures);
      }
      if (closed) break;
      await sleep(stats.nextDelayMs);
    }
    if (client) await dispose(client);
  }

  const running = loop().catch((err) => log.error({ err }, 'Modbus poll loop stopped unexpectedly'));

  return {
    async close() {
      if (closed) return void (await running);
      closed = true;
      wake?.();
      if (client) await dispose(client);
      await running;
      stats.state = 'closed';
    },
    stats: () => ({ ...stats, pointFaults: [...stats.pointFaults], blocks: stats.blocks.map((b) => ({ ...b })) }),
  };
}
