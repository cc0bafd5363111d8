// With a certificate and key configured, MQTT also listens with TLS and the API serves HTTPS.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'node:https';
import type { Socket } from 'node:net';
import { connectDevice, publishAsync, startTestGateway, waitFor, type TestGateway } from '../helpers/gateway.js';
import { tcpTimerOf } from '../helpers/tcp.js';

function makeCert(dir: string) {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  try {
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key,
      '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { stdio: 'pipe' });
  } catch (err) {
    throw new Error(`openssl is needed to make a test certificate: apt-get install -y openssl (${(err as Error).message})`);
  }
  return { key, cert };
}

describe('TLS', () => {
  let t: TestGateway;
  let ca: Buffer;
  beforeAll(async () => {
    const { key, cert } = makeCert(mkdtempSync(join(tmpdir(), 'eldergate-tls-')));
    ca = readFileSync(cert);
    t = await startTestGateway({ tls: { certFile: cert, keyFile: key }, mqtt: { port: 0, tlsPort: 0, host: '127.0.0.1' } });
  });
  afterAll(async () => t?.stop());

  it('serves the API over HTTPS and takes an SOS over MQTT with TLS', async () => {
    const body = JSON.stringify({ username: 'admin', password: t.adminPassword });
    const login = await new Promise<{ status: number; token: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: t.gw.httpPort, path: '/api/auth/login', method: 'POST', ca, servername: 'localhost',
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) } }, (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve({ status: res.statusCode!, token: JSON.parse(data).token }));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(login.status).toBe(200);
    expect(t.gw.broker!.tlsPort).toBeGreaterThan(0);
    const dev = t.gw.registry.provision({ kind: 'call-phone', serial: 'TLS-1' });
    const c = await connectDevice(`mqtts://127.0.0.1:${t.gw.broker!.tlsPort}`, dev.device.id, dev.secret, { ca, servername: 'localhost', rejectUnauthorized: true });
    await publishAsync(c, `devices/${dev.device.id}/events`, JSON.stringify({ ts: 1, seq: 1, type: 'sos' }));
    // a device whose network died is found by the kernel here too (core/tcp-keepalive.ts)
    const local = (c.stream as Socket).localPort!;
    await waitFor(() => tcpTimerOf(t.gw.broker!.tlsPort!, local) !== 'retransmit', 'the PUBACK acknowledged');
    expect(tcpTimerOf(t.gw.broker!.tlsPort!, local)).toBe('keepalive');
    c.end(true);
    const n = (t.gw.store.sqlite.prepare("select count(*) n from observations where device_id = ? and type = 'sos'").get(dev.device.id) as { n: number }).n;
    expect(n).toBe(1);
  });
});
