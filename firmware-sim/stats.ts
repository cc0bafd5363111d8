// What a fleet run counts: connections, alarms sent and PUBACKed, acknowledge-alarm commands received, and the
// latency distributions behind the progress line and the report.
import { Latency } from './core/stats.js';
import type { CommandResult, Terminal, TerminalObserver } from './devices/terminal.js';
import type { Dropped } from './devices/outbox.js';
import type { DeviceCommand, OutMessage } from './devices/types.js';

export class FleetStats implements TerminalObserver {
  connected = 0;
  connects = 0;
  reconnects = 0;
  connectFailures = 0;
  disconnects = 0;
  /** life-safety alarms (sos, fall, …) first sent / PUBACKed */
  alarmsSent = 0;
  alarmsAcked = 0;
  /** every QoS 1 event (alarms, cancels, tests) */
  eventsSent = 0;
  eventsAcked = 0;
  resends = 0;
  telemetrySent = 0;
  droppedTelemetry = 0;
  droppedAlarms = 0;
  commands = 0;
  ackCommands = 0;
  commandsFailed = 0;
  /** alarm first publish → PUBACK */
  readonly puback = new Latency();
  /** alarm first publish → acknowledge-alarm command received ("help is coming") */
  readonly ackCommand = new Latency();
  readonly startedAt = Date.now();
  private readonly listeners: TerminalObserver[] = [];

  /** another observer that hears everything after the counters are updated */
  listen(o: TerminalObserver): () => void {
    this.listeners.push(o);
    return () => {
      const i = this.listeners.indexOf(o);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  onConnected(t: Terminal, attempt: number): void {
    this.connected++;
    this.connects++;
    if (t.connects > 1) this.reconnects++;
    for (const l of this.listeners) l.onConnected?.(t, attempt);
  }

  onDisconnected(t: Terminal, reason: string): void {
    this.connected--;
    this.disconnects++;
    for (const l of this.listeners) l.onDisconnected?.(t, reason);
  }

  onConnectFailed(t: Terminal, error: string, retryInMs: number): void {
    this.connectFailures++;
    for (const l of this.listeners) l.onConnectFailed?.(t, error, retryInMs);
  }

  onSent(t: Terminal, m: OutMessage, resend: boolean): void {
    if (resend) this.resends++;
    else if (m.channel === 'events') {
      this.eventsSent++;
      if (m.alarm) this.alarmsSent++;
    } else this.telemetrySent++;
    for (const l of this.listeners) l.onSent?.(t, m, resend);
  }

  onPuback(t: Terminal, m: OutMessage, latencyMs: number): void {
    if (m.channel === 'events') {
      this.eventsAcked++;
      if (m.alarm) {
        this.alarmsAcked++;
        this.puback.add(latencyMs);
      }
    }
    for (const l of this.listeners) l.onPuback?.(t, m, latencyMs);
  }

  onCommand(t: Terminal, cmd: DeviceCommand, result: CommandResult, alarm: OutMessage | null, latencyMs: number | null): void {
    this.commands++;
    if (!result.ok) this.commandsFailed++;
    if (cmd.type === 'acknowledge-alarm') {
      this.ackCommands++;
      if (latencyMs !== null) this.ackCommand.add(latencyMs);
    }
    for (const l of this.listeners) l.onCommand?.(t, cmd, result, alarm, latencyMs);
  }

  onDropped(t: Terminal, d: Dropped): void {
    if (d.message.channel === 'telemetry') this.droppedTelemetry++;
    else if (d.message.alarm) this.droppedAlarms++;
    for (const l of this.listeners) l.onDropped?.(t, d);
  }

  snapshot() {
    return {
      connected: this.connected,
      connects: this.connects,
      reconnects: this.reconnects,
      connectFailures: this.connectFailures,
      disconnects: this.disconnects,
      alarmsSent: this.alarmsSent,
      alarmsAcked: this.alarmsAcked,
      eventsSent: this.eventsSent,
      eventsAcked: this.eventsAcked,
      resends: this.resends,
      telemetrySent: this.telemetrySent,
      droppedTelemetry: this.droppedTelemetry,
      droppedAlarms: this.droppedAlarms,
      commands: this.commands,
      ackCommands: this.ackCommands,
      commandsFailed: this.commandsFailed,
      puback: this.puback.summary(),
      ackCommand: this.ackCommand.summary(),
    };
  }
}

export type StatsSnapshot = ReturnType<FleetStats['snapshot']>;
