// The "3G/SG watch" protocol (Beesure / SeTracker family): GPS watches and pendants over TCP, `[MF*ID*LEN*CONTENT]`.
// What the watch waits for is answered only once what it said is durable: LK → `LK`, AL → `AL` (and nothing for UD,
// which the protocol never answers). The protocol has no password: only a provisioned watch id is served.
// docs/protocols/watch.md says what is acknowledged when, how a watch is provisioned and the security notes.
import type { DeviceCommand, Observation, Position } from '../../../core/contracts.js';
import { isLifeSafety } from '../../../core/contracts.js';
import type { ListenerSettings, Peer, ProtocolHandler, ProtocolServices } from '../types.js';
import { deliver } from '../deliver.js';
import { createWatchFramer, type WatchFrame } from './framer.js';
import { alarmsOf, isAlarmKeyword, isPositionKeyword, parseKeepalive, parseReport, type Report } from './decode.js';
import { ECHO_KEYWORDS, encodeFrame, planCommand } from './encode.js';
import type { WatchSettings } from './settings.js';

export type { WatchFrame } from './framer.js';
export type { WatchSettings } from './settings.js';

/** a position without a GPS fix whose coordinates are the watch's last fix: how far off it may be, metres */
const STALE_ACCURACY_M = 1000;
/** commands waiting for their echo, per device; older ones are dropped (they expire in the command store) */
const MAX_PENDING = 32;

interface PeerState {
  /** the watch id this connection is bound to */
  watchId?: string;
  deviceId?: string;
  manufacturer: string;
  /** the watch uses the `[MF*ID*INDEX*LEN*…]` form */
  index: boolean;
  refusals: number;
}

interface Pending {
  commandId: string;
  /** echo keywords still to come (set-contacts may send SOS and PHB) */
  waiting: string[];
}

/** What the handler counted (the listener counts refusals; these are the frames it served). */
export interface WatchStats {
  frames: number;
  keepalives: number;
  positions: number;
  alarms: number;
  replies: number;
  /** keywords this gateway does not use (health readings, voice, CONFIG, ICCID, …), by keyword */
  ignored: Record<string, number>;
  echoes: number;
  submitFailures: number;
}

export function createWatchProtocol(
  services: ProtocolServices,
  settings: Partial<WatchSettings> & Partial<ListenerSettings>,
): ProtocolHandler<WatchFrame> & { stats(): WatchStats } {
  const log = services.log.child({ module: 'protocol-watch' });
  const maxFrameBytes = settings.maxFrameBytes ?? 8192;
  const refusalsBeforeClose = settings.refusalsBeforeClose ?? 3;
  const ackText = settings.ackText ?? 'Help is coming';
  const peers = new Map<string, PeerState>();
  const pending = new Map<string, Pending[]>();
  const stats: WatchStats = { frames: 0, keepalives: 0, positions: 0, alarms: 0, replies: 0, ignored: {}, echoes: 0, submitFailures: 0 };

  const state = (peer: Peer): PeerState => {
    let s = peers.get(peer.id);
    if (!s) peers.set(peer.id, (s = { manufacturer: 'SG', index: false, refusals: 0 }));
    return s;
  };

  /** The device this frame is from, or undefined when refused (and the connection closed after a few). */
  const identify = (peer: Peer, st: PeerState, frame: WatchFrame, raw: Buffer): string | undefined => {
    if (st.watchId !== undefined && frame.id !== st.watchId) {
      services.refuse(peer, 'id-changed', `this connection is watch ${st.watchId}; a frame for watch ${frame.id} on it is refused`, raw);
      return undefined;
    }
    const dev = services.lookup(frame.id);
    let reason: string | undefined;
    let detail = '';
    if (!dev) {
      reason = 'unprovisioned';
      detail = `watch id ${frame.id} is not provisioned: provision it (POST /api/devices {kind: 'watch', serial: '${frame.id}'}) or check the id the watch sends`;
    } else if (dev.kind !== 'watch') {
      reason = 'unprovisioned';
      detail = `serial ${frame.id} is a ${dev.kind} device, not a watch`;
    } else if (dev.state === 'suspended') {
      reason = 'suspended';
      detail = `watch ${frame.id} is suspended: resume the device to serve it`;
    } else if (peer.deviceId !== undefined && peer.deviceId !== dev.deviceId) {
      reason = 'id-changed';
      detail = `this connection is bound to device ${peer.deviceId}; watch ${frame.id} is device ${dev.deviceId}`;
    }
    if (reason !== undefined || !dev) {
      // a suspended watch is a known device: its refusals raise its card (unprovisioned ids are nobody's)
      services.refuse(peer, reason ?? 'unprovisioned', detail, raw, reason === 'suspended' ? dev?.deviceId : undefined);
      if (reason !== 'id-changed' && ++st.refusals >= refusalsBeforeClose) {
        peer.close(`${st.refusals} frames from ${reason} watch id ${frame.id}`);
      }
      return undefined;
    }
    if (st.watchId === undefined) {
      st.watchId = frame.id;
      st.deviceId = dev.deviceId;
      peer.bind(dev.deviceId);
    }
    return dev.deviceId;
  };

  const reply = (peer: Peer, frame: WatchFrame, content: string) => {
    peer.send(encodeFrame(frame.manufacturer, frame.id, content, frame.index));
    stats.replies++;
    services.metrics?.replied(content.split(',')[0]!);
  };
  /** a keyword not used here (the label is bounded by the gateway) */
  const ignore = (keyword: string) => {
    stats.ignored[keyword] = (stats.ignored[keyword] ?? 0) + 1;
    services.metrics?.ignored(keyword);
  };

  /** Submit in order, life-safety first; true once all are durable. */
  const submitAll = (peer: Peer, frame: WatchFrame, observations: Observation[]): Promise<boolean> => {
    const ordered = [...observations.filter((o) => isLifeSafety(o.type)), ...observations.filter((o) => !isLifeSafety(o.type))];
    return deliver(services, ordered, {
      failed(err, o) {
        // no reply: the watch sends again (AL) or its next keepalive is answered
        stats.submitFailures++;
        log.error({ err, peer: peer.id, keyword: frame.keyword, watchId: frame.id, type: o.type }, 'could not store the watch frame; not answering it so the watch sends again');
      },
    });
  };

  const frameFlags = (peer: Peer, frame: WatchFrame, extra: string[] = []) => {
    const flags = [...peer.flags, ...extra];
    if (frame.lengthMismatch) flags.push('length-mismatch');
    if (frame.looseEscape) flags.push('loose-escape');
    return flags;
  };

  const base = (deviceId: string, flags: string[], deviceTs: number | undefined, detail: Record<string, unknown>) => ({
    deviceId,
    receivedAt: services.now(),
    source: 'watch' as const,
    ...(deviceTs !== undefined ? { deviceTs } : {}),
    ...(flags.length > 0 ? { flags } : {}),
    detail,
  });

  const keepalive = async (peer: Peer, frame: WatchFrame, deviceId: string, body: string | undefined) => {
    stats.keepalives++;
    const k = parseKeepalive(body);
    const detail: Record<string, unknown> = { keyword: 'LK', manufacturer: frame.manufacturer };
    if (k.steps !== undefined) detail.steps = k.steps;
    if (k.rolls !== undefined) detail.rolls = k.rolls;
    const obs: Observation = {
      ...base(deviceId, frameFlags(peer, frame, k.flags), undefined, detail),
      type: 'heartbeat',
      ...(k.battery !== undefined ? { battery: k.battery } : {}),
    };
    if (await submitAll(peer, frame, [obs])) reply(peer, frame, 'LK');
  };

  const report = async (peer: Peer, frame: WatchFrame, deviceId: string, body: string) => {
    const alarm = isAlarmKeyword(frame.keyword);
    if (alarm) stats.alarms++;
    else stats.positions++;
    const r = parseReport(body);
    const observations = reportObservations(frame, deviceId, r, alarm, frameFlags(peer, frame, r.flags), base);
    if ((await submitAll(peer, frame, observations)) && alarm) reply(peer, frame, 'AL');
  };

  const echo = async (peer: Peer, frame: WatchFrame, deviceId: string) => {
    const keyword = frame.keyword.toUpperCase();
    const list = pending.get(deviceId) ?? [];
    const p = list.find((x) => x.waiting.includes(keyword));
    if (!p) {
      ignore(keyword);
      log.debug({ deviceId, keyword }, 'watch echoed a command we are not waiting for (answered before, or sent before a restart)');
      return;
    }
    stats.echoes++;
    p.waiting.splice(p.waiting.indexOf(keyword), 1);
    if (p.waiting.length > 0) return;
    list.splice(list.indexOf(p), 1);
    if (list.length === 0) pending.delete(deviceId);
    try {
      await services.commandAnswered(deviceId, p.commandId, true);
    } catch (err) {
      log.error({ err, deviceId, commandId: p.commandId }, 'could not record the watch\'s answer to a command');
    }
  };

  return {
    name: 'watch',
    framer: () => createWatchFramer(maxFrameBytes),
    stats: () => ({ ...stats, ignored: { ...stats.ignored } }),

    async onFrame(peer, frame, raw) {
      stats.frames++;
      const st = state(peer);
      const deviceId = identify(peer, st, frame, raw);
      if (deviceId === undefined) return;
      st.manufacturer = frame.manufacturer;
      st.index = frame.index !== undefined;

      const comma = frame.content.indexOf(0x2c);
      const body = comma < 0 ? undefined : frame.content.toString('utf8', comma + 1);
      const keyword = frame.keyword;
      const upper = keyword.toUpperCase();

      if (upper === 'LK') return keepalive(peer, frame, deviceId, body);
      if (isPositionKeyword(keyword)) return report(peer, frame, deviceId, body ?? '');
      if (ECHO_KEYWORDS.has(upper) || /^SOS[1-3]$/.test(upper)) return echo(peer, frame, deviceId);
      // replies the watch waits for, as Traccar gives them; nothing of ours to store first
      if (upper === 'INIT') return reply(peer, frame, 'INIT,1');
      if (upper === 'TKQ' || upper === 'TKQ2') return reply(peer, frame, upper);
      // health readings, voice (TK, JXTK: not kept, so not acknowledged), CONFIG, ICCID, …: not ours, not an error
      const name = /^[A-Za-z0-9_]{1,16}$/.test(keyword) ? keyword : '(other)';
      ignore(name);
      log.debug({ deviceId, keyword: name }, 'watch keyword not used by this gateway; ignored');
    },

    onClose(peer) {
      peers.delete(peer.id);
    },

    encodeCommand(peer: Peer, cmd: DeviceCommand) {
      const st = peers.get(peer.id);
      if (!st?.watchId || !st.deviceId) return { error: 'the watch has not identified itself on this connection yet' };
      const plan = planCommand(cmd, { ackText });
      if ('error' in plan) return plan;
      // Traccar sends commands to 3G watches with the SG prefix; the index form uses index 0001
      const mf = st.manufacturer === '3G' ? 'SG' : st.manufacturer;
      const bytes = Buffer.concat(plan.frames.map((f) => encodeFrame(mf, st.watchId!, f.content, st.index ? '0001' : undefined)));
      // a command resent on reconnect replaces its earlier wait
      const list = (pending.get(st.deviceId) ?? []).filter((p) => p.commandId !== cmd.id);
      list.push({ commandId: cmd.id, waiting: plan.frames.map((f) => f.echo) });
      while (list.length > MAX_PENDING) list.shift();
      pending.set(st.deviceId, list);
      return { bytes };
    },

    close() {
      peers.clear();
      pending.clear();
    },
  };
}

type Base = (deviceId: string, flags: string[], deviceTs: number | undefined, detail: Record<string, unknown>) =>
  Pick<Observation, 'deviceId' | 'receivedAt' | 'source' | 'deviceTs' | 'flags' | 'detail'>;

/**
 * A UD / AL report → observations.
 * - GPS fix ('A') with coordinates → the position; no fix ('V') with coordinates → the watch's last fix, marked stale
 *   with a large accuracy; coordinates 0,0 or unreadable → no position is made up: a UD becomes a heartbeat carrying
 *   the cells and Wi-Fi in its detail (fix 'lbs' / 'wifi' / 'none'), so the watch is alive and the radio data kept.
 * - AL: each status alarm bit its observation (SOS, fall, removed, fence exit → wander, fence entry → wander restore,
 *   low battery, power cut); an AL whose status is unreadable or names no alarm we know is raised as an SOS, flagged
 *   `alarm-unclassified`: the watch said alarm, and no parsing problem may swallow it.
 * - UD: only the alarm half of the status word raises (the state half repeats with every report).
 */
export function reportObservations(frame: WatchFrame, deviceId: string, r: Report, alarm: boolean, flags: string[], base: Base): Observation[] {
  const known = r.lat !== undefined && r.lon !== undefined && !(r.lat === 0 && r.lon === 0);
  const gps = known && r.validity === 'A';
  const fix = gps ? 'gps' : r.wifi.length > 0 ? 'wifi' : r.cells.length > 0 ? 'lbs' : 'none';
  let position: Position | undefined;
  if (known) {
    position = { lat: r.lat!, lon: r.lon! };
    if (r.deviceTs !== undefined) position.at = r.deviceTs;
    if (!gps) {
      position.stale = true;
      position.accuracy = STALE_ACCURACY_M;
    }
  }
  const detail: Record<string, unknown> = { keyword: frame.keyword.slice(0, 16), manufacturer: frame.manufacturer, fix };
  if (r.validity) detail.validity = r.validity;
  if (frame.keyword === 'UD2') detail.buffered = true; // a "blind spot" report sent after the link came back
  for (const k of ['speedKmh', 'course', 'altitude', 'satellites', 'gsmSignal', 'steps', 'rolls'] as const) {
    if (r[k] !== undefined) detail[k] = r[k];
  }
  if (r.statusHex !== undefined) detail.status = r.statusHex;
  if (r.cells.length > 0) detail.cells = r.cells;
  if (r.wifi.length > 0) detail.wifi = r.wifi;

  const b = base(deviceId, flags, r.deviceTs, detail);
  const withPos = position ? { position } : {};
  const out: Observation[] = [];
  const alarms = r.status !== undefined ? alarmsOf(r.status, alarm) : [];
  for (const a of alarms) {
    switch (a) {
      case 'sos': out.push({ ...b, type: 'sos', ...withPos }); break;
      case 'fall': out.push({ ...b, type: 'fall', ...withPos }); break;
      case 'removed': out.push({ ...b, type: 'removed', ...withPos }); break;
      case 'fence-out': out.push({ ...b, type: 'wander', ...withPos }); break;
      case 'fence-in': out.push({ ...b, type: 'wander', restore: true, ...withPos }); break;
      case 'power-cut': out.push({ ...b, type: 'power-lost' }); break;
      case 'low-battery':
        if (r.battery !== undefined) out.push({ ...b, type: 'battery', level: r.battery });
        else out.push({ ...b, type: 'unknown', code: 'watch-low-battery' });
        break;
    }
  }
  if (alarm && out.length === 0) {
    out.push({ ...b, flags: [...(b.flags ?? []), 'alarm-unclassified'], type: 'sos', ...withPos });
  }
  if (!alarm) {
    if (position) out.push({ ...b, type: 'position', position, ...(r.battery !== undefined ? { battery: r.battery } : {}) });
    else out.push({ ...b, type: 'heartbeat', ...(r.battery !== undefined ? { battery: r.battery } : {}) });
  }
  return out;
}
