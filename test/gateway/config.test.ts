import { describe, expect, it } from 'vitest';
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
});
