/**
 * Dependencies for an in-process app in tests: the public test keys of CARD-SECURITY.md (TAC
 * master key version 1, QR master key version 1), a PII key, a pinned or real clock.
 */
import type PgBoss from 'pg-boss';
import { loadConfig, type Config } from '../../adapters/config.ts';
import { ConfigKeyStore, PiiKeyring } from '../../adapters/crypto/index.ts';
import type { AppDeps } from '../../adapters/http/context.ts';
import { createMetrics, ledgerObserver } from '../../adapters/metrics.ts';
import type { Db } from '../../adapters/postgres/db.ts';
import { Ledger } from '../../ledger/index.ts';

export const test_tac_master_keys = '1:0123456789ABCDEFFEDCBA9876543210';
export const test_qr_master_keys = '1:00112233445566778899AABBCCDDEEFF';
export const test_pii_keys = '1:6A1F0C9E4B2D7788990011AABBCCDDEE';

export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({ ONECARD_DATA_DIR: '/tmp/onecard-test-data' }), ...overrides };
}

export function testDeps(db: Db, overrides: Partial<AppDeps> & { boss?: PgBoss | null } = {}): AppDeps {
  const { boss, ...rest } = overrides;
  const metrics = overrides.metrics ?? createMetrics();
  return {
    db,
    ledger: new Ledger(ledgerObserver(metrics)),
    metrics,
    queue: () => boss ?? null,
    bodyBytesMax: 16 * 1024 * 1024,
    now: () => new Date(),
    config: testConfig(),
    keyStore: ConfigKeyStore.fromConfigStrings(test_tac_master_keys, test_qr_master_keys),
    pii: PiiKeyring.fromConfigString(test_pii_keys),
    ...rest,
  };
}
