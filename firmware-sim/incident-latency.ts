// Alarm → incident latency for a whole run: every alarm the devices sent, matched with the incident it opened
// (same device and type, opened at or after the alarm's first publish). One paged listing, not one query per device.
import type { GatewayApi, IncidentView } from './api.js';
import type { Terminal } from './devices/terminal.js';

const CLOCK_SLACK_MS = 50;

export async function allIncidentsSince(api: GatewayApi, sinceWall: number, maxPages = 200): Promise<IncidentView[]> {
  const out: IncidentView[] = [];
  for (let page = 0; page < maxPages; page++) {
    const r = await api.request<{ items: IncidentView[]; total: number }>(
      'GET',
      `/api/incidents?from=${sinceWall - 1000}&limit=500&offset=${page * 500}`,
    );
    out.push(...r.items);
    if (r.items.length < 500 || out.length >= r.total) break;
  }
  return out;
}

/**
 * Each incident is claimed by the latest alarm of its device and type sent before it opened: an alarm that
 * joined an open incident opened nothing, and must not be paired with some later incident.
 */
export function incidentLatencies(
  terminals: Iterable<{ id: string; events: readonly Pick<Terminal['events'][number], 'alarm' | 'firstSentWall' | 'type'>[] }>,
  incidents: readonly IncidentView[],
): number[] {
  const alarms = new Map<string, number[]>();
  for (const t of terminals) {
    for (const m of t.events) {
      if (!m.alarm || m.firstSentWall === null) continue;
      const k = `${t.id}\u0000${m.type}`;
      const list = alarms.get(k) ?? [];
      list.push(m.firstSentWall);
      alarms.set(k, list);
    }
  }
  for (const list of alarms.values()) list.sort((a, b) => a - b);
  const out: number[] = [];
  for (const i of incidents) {
    const list = alarms.get(`${i.deviceId}\u0000${i.type}`);
    if (!list) continue;
    let sent: number | undefined;
    for (const at of list) {
      if (at <= i.openedAt + CLOCK_SLACK_MS) sent = at;
      else break;
    }
    if (sent !== undefined) out.push(Math.max(0, i.openedAt - sent));
  }
  return out.sort((a, b) => a - b);
}
