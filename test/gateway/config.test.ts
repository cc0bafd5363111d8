import { describe, expect, it } from 'vitest';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, envName } from '../../core/config.js';
import { ConfigError } from '../../core/errors.js';

describe('configuration', () => {
  it('has embedded defaults: MQTT 1883, HTTP 8080, ./data, and no admin password', () => {
    const c = loadConfig({});
    expect(c.mqtt.port).toBe(1883);
    expect(c.http.port).toBe(8080);
    expect(c.dataDir).toBe('./data');
    expect(c.adminPassword).toBeUndefined();
    expect(c.budgets.P1).toEqual({ pushMs: 1000, ackMs: 60_000, reachMs: 900_000 });
    expect(Object.isFrozen(c.mqtt)).toBe(true);
  });

  it('derives environment overrides from the schema', () => {
    expect(envName(['mqtt', 'maxPacketBytes'])).toBe('ELDERGATE_MQTT_MAX_PACKET_BYTES');
    const c = loadConfig({ ELDERGATE_MQTT_PORT: '2883', ELDERGATE_HTTP_PORT: '9090', ELDERGATE_DATA_DIR: '/var/lib/eg', ELDERGATE_BUDGETS_P1_ACK_MS: '30000' });
    expect([c.mqtt.port, c.http.port, c.dataDir, c.budgets.P1.ackMs]).toEqual([2883, 9090, '/var/lib/eg', 30000]);
  });

  it('reports every error at once, naming the variable to fix', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ ELDERGATE_MQTT_PORT: 'eighteen', ELDERGATE_HTTP_PORT: '70000', ELDERGATE_ADMIN_PASSWORD: 'short', ELDERGATE_TLS_CERT_FILE: '/x.pem' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.join('\n')).toMatch(/ELDERGATE_MQTT_PORT/);
    expect(err!.problems.join('\n')).toMatch(/ELDERGATE_HTTP_PORT/);
    expect(err!.problems.join('\n')).toMatch(/ELDERGATE_ADMIN_PASSWORD/);
    expect(err!.problems.join('\n')).toMatch(/ELDERGATE_TLS_KEY_FILE/);
    expect(err!.problems.length).toBeGreaterThanOrEqual(4);
  });

  const problems = (env: Record<string, string>, overrides: Record<string, unknown> = {}) => {
    try {
      loadConfig(env, overrides);
    } catch (e) {
      return (e as ConfigError).problems.join('\n');
    }
    return '';
  };

  it('refuses an unknown ELDERGATE_* variable with a suggestion, and lets the non-setting ones through', () => {
    const p = problems({ ELDERGATE_MQTT_PROT: '1884', ELDERGATE_FOO: '1' });
    expect(p).toMatch(/ELDERGATE_MQTT_PROT: not a setting \(did you mean ELDERGATE_MQTT_PORT\?\)/);
    expect(p).toMatch(/ELDERGATE_FOO: not a setting; remove it/);
    expect(p).not.toMatch(/ELDERGATE_FOO: not a setting \(did you mean/);
    // read by the code but not settings: the config file's path, the simulator's variables, the auth keys (settings)
    expect(problems({ ELDERGATE_SIM_API: 'http://x', ELDERGATE_SIM_USER: 'u', ELDERGATE_SIM_PASSWORD: 'p', ELDERGATE_SIM_MQTT: 'mqtt://x', ELDERGATE_SIM_NO_MAIN: '1',
      ELDERGATE_AUTH_SIGNING_KEY: 'k'.repeat(40), ELDERGATE_AUTH_PREVIOUS_SIGNING_KEY: 'j'.repeat(40), ELDERGATE_ADMIN_PASSWORD: 'a-long-password-1' })).toBe('');
  });

  it('refuses unknown keys of the file at every level, with a suggestion', () => {
    const dir = mkdtempSync(join(tmpdir(), 'eg-cfg-'));
    const file = join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ htp: { port: 1 }, mqtt: { prot: 1884 }, retention: { telemetryDay: 7 } }));
    const p = problems({ ELDERGATE_CONFIG: file });
    expect(p).toMatch(/unknown setting "htp" \(did you mean http\?\)/);
    expect(p).toMatch(/unknown setting "mqtt.prot" \(did you mean mqtt.port\?\)/);
    expect(p).toMatch(/unknown setting "retention.telemetryDay" \(did you mean retention.telemetryDays\?\)/);
  });

  it('lists the allowed values of an enum and says "not a number" for text where a number goes', () => {
    const p = problems({ ELDERGATE_LOG_LEVEL: 'loud', ELDERGATE_MQTT_PORT: 'abc' });
    expect(p).toMatch(/ELDERGATE_LOG_LEVEL: "loud" is not one of the allowed values: fatal, error, warn, info, debug, trace, silent/);
    expect(p).toMatch(/ELDERGATE_MQTT_PORT: "abc" is not a number/);
    expect(p).not.toMatch(/got null/);
  });

  it('retention: incidents kept for ever (0) or at least 30 days', () => {
    expect(loadConfig({ ELDERGATE_RETENTION_INCIDENTS_DAYS: '0' }).retention.incidentsDays).toBe(0);
    expect(problems({ ELDERGATE_RETENTION_INCIDENTS_DAYS: '5' })).toMatch(/ELDERGATE_RETENTION_INCIDENTS_DAYS: 5 days is too short.*use 0 \(never prune\) or 30 or more/);
  });
});
