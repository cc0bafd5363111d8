// What a scenario run leaves on a gateway, and taking it away again (issue 13 §4: a test engineer's run never
// pollutes a live board). Everything a run creates is marked test at creation (provision.ts); at the end the run
// decommissions the devices it created (a decommissioned device is no longer supervised, so it never raises an
// "offline" incident), closes its devices' open test incidents with "test run <id> ended", and notes the end on its
// test residents (the API has no way to delete a resident; they stay marked test). All through the HTTP API.
import type { GatewayApi, IncidentView } from '../api.js';
import { ApiError } from '../core/errors.js';
import { pool } from '../provision.js';

/** What one run created (and so may take away), and every device it drove. */
export interface TestRunRecord {
  id: string;
  /** devices this run provisioned: decommissioned at the end */
  createdDevices: string[];
  /** residents this run created (marked test) */
  createdResidents: string[];
  /** every device of the run, reused ones included: their open *test* incidents are closed */
  devices: string[];
}

export interface CleanupResult {
  devicesDecommissioned: number;
  incidentsClosed: number;
  residentsMarked: number;
  /** what could not be cleaned, one line each (the run's exit code does not change for it) */
  errors: string[];
  ms: number;
}

const ACTIVE = 'open,acknowledged,dispatched,on-site';

/** a run id: short, sortable by time, unique enough to tell runs apart on one gateway; also the serial prefix */
export function newRunId(now = Date.now(), rand = Math.random): string {
  return `run-${now.toString(36)}-${Math.floor(rand() * 0x10000).toString(16).padStart(4, '0')}`;
}

export const endNote = (runId: string) => `test run ${runId} ended`;

export async function cleanUpRun(api: GatewayApi, run: TestRunRecord, opts: { concurrency?: number } = {}): Promise<CleanupResult> {
  const started = performance.now();
  const n = opts.concurrency ?? 8;
  const r: CleanupResult = { devicesDecommissioned: 0, incidentsClosed: 0, residentsMarked: 0, errors: [], ms: 0 };
  const fail = (what: string, err: unknown) => {
    if (r.errors.length < 50) r.errors.push(`${what}: ${(err as Error).message}`);
  };

  // 1. devices first: once decommissioned nothing new can be raised for them, so step 2 sees everything
  await pool(run.createdDevices, n, async (id) => {
    try {
      await api.request('POST', `/api/devices/${encodeURIComponent(id)}/decommission`);
      r.devicesDecommissioned++;
    } catch (err) {
      fail(`decommission ${id}`, err);
    }
  });

  // 2. every still-open test incident of the run's devices; a real incident is never touched
  await pool(run.devices, n, async (id) => {
    let open: IncidentView[];
    try {
      open = (await api.incidents({ deviceId: id, status: ACTIVE, test: 'true', limit: 500 })).filter((i) => i.test === true);
    } catch (err) {
      return fail(`incidents of ${id}`, err);
    }
    for (const i of open) {
      try {
        await api.request('POST', `/api/incidents/${encodeURIComponent(i.id)}/cancel`, { reason: endNote(run.id) });
        r.incidentsClosed++;
      } catch (err) {
        // closed meanwhile (a cancel by the device, a person): nothing left to do
        if (err instanceof ApiError && err.status === 409) continue;
        fail(`close incident ${i.id}`, err);
      }
    }
  });

  // 3. residents: marked test since their creation; the note says which run they belonged to and that it is over
  await pool(run.createdResidents, n, async (id) => {
    try {
      await api.request('PATCH', `/api/residents/${encodeURIComponent(id)}`, { notes: `${endNote(run.id)} at ${new Date().toISOString()}: test resident, not a person in care` });
      r.residentsMarked++;
    } catch (err) {
      fail(`mark resident ${id}`, err);
    }
  });
  r.ms = Math.round(performance.now() - started);
  return r;
}

export function cleanupSummary(runId: string, c: CleanupResult): string {
  const done = `cleaned up test run ${runId}: ${c.devicesDecommissioned} device(s) decommissioned, ${c.incidentsClosed} test incident(s) closed, ${c.residentsMarked} test resident(s) marked`;
  return c.errors.length ? `${done}; ${c.errors.length} problem(s): ${c.errors.slice(0, 3).join('; ')}` : done;
}
