// `npm start`: the gateway on its embedded defaults (MQTT 1883, HTTP 8080, SQLite under ./data), env overrides.
import { loadConfig } from './core/config.js';
import { ConfigError } from './core/errors.js';
import { createLogger } from './core/logger.js';
import { startEldergate } from './eldergate.js';

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
    throw err;
  }
  if (gw.bootstrap?.generated) {
    // Shown once, on the terminal, never in the structured log. There is no default password.
    process.stderr.write(
      `\n  First start: created the administrator account.\n    username: ${gw.bootstrap.username}\n    password: ${gw.bootstrap.password}\n` +
        '  Store it now: it is not shown again. (Set ELDERGATE_ADMIN_PASSWORD on first start to choose it.)\n\n',
    );
  }
  log.info({ mqttPort: gw.mqttPort, mqttTlsPort: gw.broker.tlsPort, httpPort: gw.httpPort, dataDir: config.dataDir, https: Boolean(config.tls.certFile) }, 'eldergate ready');

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
