// `npm start`: the gateway on its embedded defaults (MQTT 1883, HTTP 8080, SQLite under ./data), env overrides.
// `npm run rotate-token-key [-- --now]` (= `tsx main.ts rotate-token-key`): a new token-signing key, with the same
// environment as the gateway (it finds the key file from it); see docs/security.md.
import { envName, loadConfig, type Config } from './core/config.js';
import { ConfigError } from './core/errors.js';
import { createLogger } from './core/logger.js';
import { startEldergate } from './eldergate.js';
import { rotateTokenKey } from './core/token-keys.js';

function rotateCommand(config: ReturnType<typeof loadConfig>, args: string[]): void {
  const unknown = args.filter((a) => a !== '--now');
  if (unknown.length) throw new ConfigError([`rotate-token-key: unknown argument(s) ${unknown.join(' ')}; the only option is --now (drop the previous key at once: everyone logs in again)`]);
  const out = rotateTokenKey(config, { now: args.includes('--now') });
  process.stdout.write(
    `token-signing key rotated in ${out.file}\n` +
      '  new tokens are signed with the new key; a running gateway picks it up within a second (no restart).\n' +
      (out.previousValidUntil
        ? `  tokens signed with the previous key stay valid until ${new Date(out.previousValidUntil).toISOString()} (one http.tokenTtlS); consoles renew onto the new key before then.\n`
        : '  the previous keys were dropped (--now): every session ends; everyone logs in again.\n'),
  );
}
import { installLastResort } from './core/last-resort.js';

/**
 * What the operator must change when start-up fails on the host rather than in the code: a listening port already
 * taken (EADDRINUSE) or not allowed (EACCES), a TLS file that cannot be read. Null for anything else (a real bug: its
 * stack trace is wanted).
 */
function startupHint(err: unknown, config: Config): string | null {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string };
  if (!e || typeof e !== 'object') return null;
  const setting = (path: string[]) => `${path.join('.')} (${envName(path)})`;
  if ((e.code === 'EADDRINUSE' || e.code === 'EACCES' || e.code === 'EADDRNOTAVAIL') && typeof e.port === 'number') {
    const ports: [string[], number, string[]][] = [
      [['mqtt', 'port'], config.mqtt.port, ['mqtt', 'host']],
      [['mqtt', 'tlsPort'], config.mqtt.tlsPort, ['mqtt', 'host']],
      [['http', 'port'], config.http.port, ['http', 'host']],
      ...(['watch', 'jt808', 'dc09'] as const).map((name): [string[], number, string[]] =>
        [['protocols', name, 'port'], config.protocols[name].port ?? -1, ['protocols', name, 'host']]),
    ];
    const match = ports.find(([, port]) => port === e.port);
    const what = e.code === 'EADDRINUSE' ? 'is already in use by another process'
      : e.code === 'EACCES' ? 'may not be opened by this user (ports below 1024 need privileges)'
        : 'is on an address this machine does not have';
    const change = match
      ? (e.code === 'EADDRNOTAVAIL' ? setting(match[2]) : setting(match[0]))
      : 'mqtt.port, mqtt.tlsPort, http.port or protocols.<name>.port';
    return `port ${e.port} on ${e.address ?? 'this host'} ${what}: change ${change}, or stop the other process`;
  }
  if ((e.code === 'ENOENT' || e.code === 'EACCES' || e.code === 'EISDIR') && typeof e.path === 'string') {
    const files: [string[], string | undefined][] = [[['tls', 'certFile'], config.tls.certFile], [['tls', 'keyFile'], config.tls.keyFile], [['auth', 'keyFile'], config.auth.keyFile]];
    const match = files.find(([, file]) => file && e.path === file);
    if (match) {
      const why = e.code === 'ENOENT' ? 'does not exist' : e.code === 'EISDIR' ? 'is a directory' : 'cannot be read by this user';
      const tls = match[0][0] === 'tls' ? ', or unset tls.certFile and tls.keyFile to run without TLS' : '';
      return `${setting(match[0])}: the file ${e.path} ${why}; set ${match[0].join('.')} to a readable file${tls}`;
    }
  }
  return null;
}

async function main() {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`eldergate cannot start: ${err.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw err;
  }
  if (process.argv[2] === 'rotate-token-key') {
    try {
      rotateCommand(config, process.argv.slice(3));
    } catch (err) {
      if (err instanceof ConfigError) {
        process.stderr.write(`rotate-token-key: ${err.message}\n`);
        process.exit(78);
      }
      throw err;
    }
    return;
  }
  const log = createLogger(config.logLevel);
  let gw;
  try {
    gw = await startEldergate({ config, log });
  } catch (err) {
    // rules declared as data, register maps and receiver settings are checked as the parts start
    if (err instanceof ConfigError) {
      process.stderr.write(`eldergate cannot start: ${err.message}\n`);
      process.exit(78);
    }
    // a port in use or a certificate that is not there: the setting to change, not a stack trace
    const hint = startupHint(err, config);
    if (hint) {
      log.fatal({ code: (err as NodeJS.ErrnoException).code }, hint);
      process.stderr.write(`eldergate cannot start: ${hint}\n`);
      process.exit(78);
    }
    throw err;
  }
  if (gw.bootstrap?.generated) {
    // Shown once, on the terminal, never in the structured log. There is no default password.
    process.stderr.write(
      `\n  First start: created the administrator account.\n    username: ${gw.bootstrap.username}\n    password: ${gw.bootstrap.password}\n` +
        '  Store it now: it is not shown again. (Set ELDERGATE_ADMIN_PASSWORD on first start to choose it.)\n\n',
    );
  }
  log.info({ mqttPort: gw.mqttPort, mqttTlsPort: gw.broker?.tlsPort ?? null, cluster: gw.cluster ? { rabbitmq: config.rabbitmq.urls, partitions: config.rabbitmq.partitions } : undefined, httpPort: gw.httpPort, dataDir: config.dataDir, https: Boolean(config.tls.certFile) }, 'eldergate ready');

  // issue 14: what nothing caught (core/last-resort.ts explains the choice)
  installLastResort({ log, count: (where) => gw.metrics.internalErrors.inc({ where }), shutdown: () => gw.close() });

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'stopping');
    const force = setTimeout(() => process.exit(1), 10_000).unref();
    await gw.close();
    clearTimeout(force);
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
}

main().catch((err) => {
  process.stderr.write(`eldergate failed to start: ${(err as Error).stack ?? err}\n`);
  process.exit(1);
});
