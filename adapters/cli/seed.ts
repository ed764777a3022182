/**
 * `npm run seed -- [--seed 42] [--cards 100000] [--as-of 2026-11-01] [--verify]`: a realistic,
 * deterministic demo city (banks, transit operators with 2,000 buses, hospitals, pharmacies,
 * utilities, shops, cards with opening balances) in DATABASE_URL or the embedded Postgres.
 * Running it again with the same options changes nothing. Writes demo API keys to
 * `<dataDir>/seed-credentials.json` and what a tester needs to `<dataDir>/seed-summary.json`
 * (both mode 0600); prints how to use them, never the tokens.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import cliProgress from 'cli-progress';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';
import { createPool } from '../postgres/db.ts';
import { ConfigKeyStore } from '../crypto/index.ts';
import { resolveMasterKeys } from '../crypto/master-keys-file.ts';
import { isDomainError } from '../../engine/errors.ts';
import { seed_as_of_default, seed_cards_default } from '../../engine/reference/index.ts';
import { Ledger } from '../../ledger/index.ts';
import { ensureSeedKeys, seed_credentials_file, seedCity, writeSeedSummary, type SeedSummary } from '../reference/index.ts';

const usage = `usage: npm run seed -- [--seed N] [--cards N] [--as-of YYYY-MM-DD] [--verify]
  --seed     PRNG seed (default 42): the same seed makes the same city
  --cards    number of cards (default ${seed_cards_default})
  --as-of    the date card histories end and opening balances are dated (default ${seed_as_of_default})
  --verify   recompute every ledger balance afterwards
`;

function wholeNumber(text: string | undefined, fallback: number, name: string): number {
  if (text === undefined) return fallback;
  if (!/^[0-9]{1,10}$/.test(text)) throw new Error(`--${name} must be a whole number`);
  return Number(text);
}

/** A bar on a terminal; a line per 10 % otherwise (CI logs). Both on stderr. */
function progress(label: string): { update(done: number, total: number): void; stop(): void } {
  if (!process.stderr.isTTY) {
    let last = -1;
    return {
      update(done, total) {
        const pct = total === 0 ? 100 : Math.floor((done / total) * 10) * 10;
        if (pct !== last) { last = pct; process.stderr.write(`${label}: ${pct}%\n`); }
      },
      stop() {},
    };
  }
  const bar = new cliProgress.SingleBar({ format: `${label} [{bar}] {percentage}% {value}/{total} cards, eta {eta}s`, stream: process.stderr, hideCursor: true }, cliProgress.Presets.shades_classic);
  let started = false;
  return {
    update(done, total) {
      if (!started) { bar.start(total, 0); started = true; }
      bar.update(done);
    },
    stop() { if (started) bar.stop(); },
  };
}

function howTo(summary: SeedSummary, credentials: string, summaryFile: string, dataDir: string, baseUrl: string): string {
  const op = summary.operators[0];
  const bank = summary.banks[0];
  const hospital = summary.merchants.find((m) => m.kind === 'MEDICAL');
  const t = summary.totals;
  const cred = (name: string) => `$(jq -r .${name} "$CRED")`;
  return [
    '',
    `Seeded the demo city (seed ${summary.seed}, as of ${summary.as_of}):`,
    `  ${summary.banks.length} banks, ${summary.operators.length} transit operators with ${summary.operators.reduce((a, o) => a + o.terminal_ids.length, 0)} bus terminals, ` +
      `${summary.merchants.length} other merchants, ${summary.cards} cards (${Object.entries(t.cards_by_status).map(([k, v]) => `${v} ${k}`).join(', ')})`,
    `  purses hold ${t.purse_fen} fen on ${t.purse_accounts} cards; medical accounts ${t.medical_fen} fen on ${t.medical_accounts} cards`,
    `  this run: ${summary.run.cards_created} cards and ${summary.run.entries_written} ledger entries written, ` +
      `${summary.run.entries_replayed} already there, in ${summary.run.seconds} s`,
    '',
    `Credentials (mode 0600, tokens not printed): ${credentials}`,
    `Summary (ids, terminals, sample cards, TAC vectors):  ${summaryFile}`,
    '',
    'How to use (start the engine first: npm start):',
    `  CRED=${credentials}`,
    `  curl -H "Authorization: Bearer ${cred('finance_1')}" '${baseUrl}/v1/merchants?kind=TRANSIT'`,
    `  curl -H "Authorization: Bearer ${cred('finance_1')}" '${baseUrl}/v1/terminals?merchant_id=${op.id}&limit=5'`,
    `  curl -H "Authorization: Bearer ${cred('auditor')}" '${baseUrl}/v1/ledger/accounts?owner_type=bank'`,
    `  curl -H "Authorization: Bearer ${cred(`operator_${op.id.replace(/[^A-Za-z0-9_]/g, '_')}`)}" ...   # operator ${op.id} uploads tap batches`,
    `  curl -H "Authorization: Bearer ${cred(`bank_${bank.code}`)}" ...   # bank ${bank.code} pulls its settlement packages`,
    ...(hospital ? [`  curl -H "Authorization: Bearer ${cred(`merchant_${hospital.id.replace(/[^A-Za-z0-9_]/g, '_')}`)}" ...   # ${hospital.id} takes QR payments`] : []),
    `  Admin routes take the bootstrap admin token: $(cat ${path.join(dataDir, 'bootstrap-admin.token')})`,
    `  Sample cards and operator terminals: jq '.sample_cards[0:3], .operators[0].terminal_ids[0:3]' ${summaryFile}`,
    '',
  ].join('\n');
}

async function main(): Promise<number> {
  let values;
  try {
    values = parseArgs({
      allowPositionals: false,
      options: { seed: { type: 'string' }, cards: { type: 'string' }, 'as-of': { type: 'string' }, verify: { type: 'boolean' }, help: { type: 'boolean' } },
    }).values;
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${usage}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  let seed: number;
  let cards: number;
  try {
    seed = wholeNumber(values.seed, 42, 'seed');
    cards = wholeNumber(values.cards, seed_cards_default, 'cards');
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${usage}`);
    return 2;
  }
  const config = loadConfig();
  const log = createLogger('warn');
  const { databaseUrl, embedded } = await resolveDatabase(config, log);
  const db = createPool(databaseUrl, 4, 'onecard-seed');
  const bar = progress('seeding cards');
  try {
    await migrateUp(databaseUrl);
    const keys = resolveMasterKeys(config, config.dataDir);
    const keyStore = ConfigKeyStore.fromConfigStrings(keys.tacMasterKeys, keys.qrMasterKeys);
    const ledger = new Ledger();
    const summary = await seedCity(db, { seed, cards, asOf: values['as-of'], ledger, keyStore, onProgress: (d, t) => bar.update(d, t) });
    bar.stop();
    const credentials = await ensureSeedKeys(db, summary, path.join(config.dataDir, seed_credentials_file), `seed:${seed}`);
    const summaryFile = writeSeedSummary(config.dataDir, summary);
    process.stdout.write(howTo(summary, credentials.file, summaryFile, config.dataDir, `http://${config.host}:${config.port}`));
    process.stdout.write(`API keys: ${credentials.created} created, ${credentials.reused} kept from the previous run\n`);
    if (values.verify) {
      process.stderr.write('verifying the ledger…\n');
      const v = await ledger.verify(db);
      process.stdout.write(v.ok ? `ledger OK (${v.accounts} accounts)\n` : 'ledger FAILED verification: run npm run ledger:verify for details\n');
      if (!v.ok) return 1;
    }
    return 0;
  } catch (e) {
    bar.stop();
    process.stderr.write(isDomainError(e) ? `${e.code}: ${e.message}\n` : `${(e as Error).stack ?? String(e)}\n`);
    return 1;
  } finally {
    await db.end();
    await embedded?.stop();
  }
}

process.exit(await main());
