/**
 * Writes the demo city of engine/reference/seed-plan.ts: reference rows through the same
 * set-based imports the admin API uses, opening balances through `Ledger.postBatch`, a chunk of
 * cards per transaction. Re-running with the same seed writes nothing new (every row compares
 * equal, every ledger key replays); a database seeded differently is refused with SEED_CONFLICT
 * rather than mixed.
 *
 * Also: demo API keys for the city's parties, and the summary a tester or benchmark needs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DomainError, isDomainError } from '../../engine/errors.ts';
import {
  chunkCount, chunkEntries, chunkMedicalDepositFen, chunkRange, planCards, planCity, programmeFundAccount,
  seed_fee_rules, tacSamples,
} from '../../engine/reference/index.ts';
import type { CityPlan, PlannedCard, RowError, SeedOptions } from '../../engine/reference/index.ts';
import { Ledger } from '../../ledger/index.ts';
import { authenticate, createApiKey, type Role } from '../auth/api-keys.ts';
import type { KeyStore } from '../crypto/index.ts';
import { withTx, type Db, type Queryable } from '../postgres/db.ts';
import * as plans from './plans.ts';
import { importBanks, importCards, importFeeSchedules, importMerchants, importTerminals, type ImportResult, type WriteContext } from './store.ts';

export const seed_credentials_file = 'seed-credentials.json';
export const seed_summary_file = 'seed-summary.json';
/** Chunks written at once: two keeps both cores busy (one encodes while the other's SQL runs). */
export const seed_chunks_in_flight_default = 2;
const sample_active_physical = 10;
const sample_active_ecard = 5;
const sample_lost = 3;
const sample_cancelled = 3;
const sample_purse_fen_min = 2_000n;

export interface SeedCityOptions extends SeedOptions {
  /** Recorded as the actor of every row; default `seed:<seed>`. */
  actor?: string;
  ledger?: Ledger;
  /** The engine's key store: the summary then carries TAC vectors for sample taps. */
  keyStore?: KeyStore;
  /** The clock stamped on reference events and status rows; default the system clock. */
  now?: () => Date;
  chunksInFlight?: number;
  onProgress?: (cardsDone: number, cardsTotal: number) => void;
}

export interface SeedSampleCard {
  card_no: string;
  form: string;
  issuing_bank: string;
  status: string;
  linked_card_no: string | null;
  purse_fen: string;
  medical_fen: string;
}

export interface SeedSummary {
  seed: number;
  cards: number;
  as_of: string;
  business_date: string;
  banks: { code: string; name: string; card_bin: string }[];
  medical_programme: { programme_id: string; bank_code: string; fund_account: string };
  operators: {
    id: string; name: string; acquiring_bank: string; terminal_ids: string[];
    lines: { line_id: string; terminal_ids: string[]; stations: { station_id: string; latitude: string; longitude: string }[] }[];
  }[];
  merchants: { id: string; name: string; kind: string; acquiring_bank: string; terminal_ids: string[] }[];
  fee_rules: Record<string, { rate: string; min_fen: string; max_fen: string }>;
  totals: {
    cards_by_status: Record<string, number>;
    cards_by_form: Record<string, number>;
    cards_by_issuer: Record<string, number>;
    linked_ecards: number;
    purse_accounts: number;
    purse_fen: string;
    medical_accounts: number;
    medical_fen: string;
    programme_deposits_fen: string;
    /** What stays in the programme fund: deposits for card indices the city does not (yet) have. */
    programme_fund_fen: string;
  };
  sample_cards: SeedSampleCard[];
  tac_vectors: { card_no: string; amount_fen: number; txn_type: number; terminal_id: string; terminal_seq: number; local_time: string; key_version: number; tac: string }[];
  /** What this run did (differs between runs; everything above does not). */
  run: { reference_created: number; cards_created: number; cards_existing: number; entries_written: number; entries_replayed: number; seconds: number };
}

interface ChunkOutcome {
  chunk: number;
  cards: PlannedCard[];
  depositFen: bigint;
  cardsCreated: number;
  cardsExisting: number;
  entriesWritten: number;
  entriesReplayed: number;
}

function seedConflict(what: string, errors: RowError[]): DomainError {
  const first = errors[0];
  return new DomainError('SEED_CONFLICT', 409,
    `This database refuses the seed's ${what} (first: ${first.code} at row ${first.index}); a database already seeded ` +
    'differently, or with clearing cycles closed, cannot take this city: seed an empty database or use the seed it was made with.',
    { errors: errors.slice(0, 20), error_count: errors.length });
}

function expectApplied(what: string, r: ImportResult): ImportResult {
  if (r.errors.length > 0) throw seedConflict(what, r.errors);
  return r;
}

async function writeReference(q: Queryable, plan: CityPlan, ctx: WriteContext): Promise<number> {
  let created = 0;
  created += expectApplied('banks', await importBanks(q, plan.banks, ctx)).created;
  created += expectApplied('merchants', await importMerchants(q, plan.merchants, ctx)).created;
  created += expectApplied('fee schedules', await importFeeSchedules(q, plan.feeSchedules, ctx)).created;
  created += expectApplied('terminals', await importTerminals(q, plan.terminals, ctx)).created;
  return created;
}

async function writeChunk(db: Db, plan: CityPlan, chunk: number, ledger: Ledger, ctx: WriteContext): Promise<ChunkOutcome> {
  const { from, to } = chunkRange(plan, chunk);
  const cards = planCards(plan, from, to);
  const entries = chunkEntries(plan, chunk, cards);
  return withTx(db, async (tx) => {
    const imported = expectApplied('cards', await importCards(tx, cards.map((c) => c.record), ctx));
    let results;
    try {
      results = await ledger.postBatch(tx, entries);
    } catch (e) {
      if (isDomainError(e) && e.code === 'IDEMPOTENCY_CONFLICT') {
        throw new DomainError('SEED_CONFLICT', 409, 'This database holds opening balances of this seed that differ from what it makes now (another seed format?); use a fresh database.', e.details);
      }
      throw e;
    }
    const replayed = results.filter((r) => r.replayed).length;
    return {
      chunk, cards, depositFen: chunkMedicalDepositFen(plan, chunk, cards), cardsCreated: imported.created, cardsExisting: imported.existing,
      entriesWritten: results.length - replayed, entriesReplayed: replayed,
    };
  });
}

/**
 * Seed the city into `db` and return its summary. Idempotent: the same options on the same
 * database write nothing the second time. Throws SEED_CONFLICT on a database seeded otherwise.
 */
export async function seedCity(db: Db, options: SeedCityOptions): Promise<SeedSummary> {
  const started = process.hrtime.bigint();
  const plan = planCity(options);
  const ledger = options.ledger ?? new Ledger();
  const clock = options.now ?? (() => new Date());
  const ctx = (): WriteContext => ({ actor: options.actor ?? `seed:${plan.seed}`, at: clock() });

  const referenceCreated = await withTx(db, (tx) => writeReference(tx, plan, ctx()));

  const chunks = chunkCount(plan);
  const outcomes = new Array<ChunkOutcome>(chunks);
  let next = 0;
  let cardsDone = 0;
  options.onProgress?.(0, plan.cards);
  const worker = async () => {
    for (let k = next++; k < chunks; k = next++) {
      const o = await writeChunk(db, plan, k, ledger, ctx());
      // Only what the summary needs is kept: a city of millions must not hold every card.
      outcomes[k] = { ...o, cards: [] };
      summarizeChunk(acc, o);
      cardsDone += o.cards.length;
      options.onProgress?.(cardsDone, plan.cards);
    }
  };
  const acc = newAccumulator(chunks);
  const inFlight = Math.max(1, Math.min(options.chunksInFlight ?? seed_chunks_in_flight_default, 8));
  await Promise.all(Array.from({ length: inFlight }, worker));

  const wrote = referenceCreated > 0 || outcomes.some((o) => o.cardsCreated > 0 || o.entriesWritten > 0);
  if (wrote) await db.query(plans.analyze_after_seed);

  const summary = buildSummary(plan, acc, options.keyStore);
  summary.run = {
    reference_created: referenceCreated,
    cards_created: outcomes.reduce((a, o) => a + o.cardsCreated, 0),
    cards_existing: outcomes.reduce((a, o) => a + o.cardsExisting, 0),
    entries_written: outcomes.reduce((a, o) => a + o.entriesWritten, 0),
    entries_replayed: outcomes.reduce((a, o) => a + o.entriesReplayed, 0),
    seconds: Math.round(Number(process.hrtime.bigint() - started) / 1e6) / 1000,
  };
  return summary;
}

// ----------------------------------------------------------------------------------- summary

interface Accumulator {
  byStatus: Record<string, number>;
  byForm: Record<string, number>;
  byIssuer: Record<string, number>;
  linked: number;
  purseAccounts: number;
  purseFen: bigint;
  medicalAccounts: number;
  medicalFen: bigint;
  depositsFen: bigint;
  /** Per chunk, so samples come out in card order whatever order chunks finished in. */
  samples: PlannedCard[][][];
}

function newAccumulator(chunks: number): Accumulator {
  return {
    byStatus: {}, byForm: {}, byIssuer: {}, linked: 0, purseAccounts: 0, purseFen: 0n, medicalAccounts: 0, medicalFen: 0n, depositsFen: 0n,
    samples: Array.from({ length: chunks }, () => [[], [], [], []]),
  };
}

const bump = (m: Record<string, number>, k: string) => { m[k] = (m[k] ?? 0) + 1; };

function summarizeChunk(acc: Accumulator, o: ChunkOutcome): void {
  acc.depositsFen += o.depositFen;
  const [physical, ecard, lost, cancelled] = acc.samples[o.chunk];
  for (const c of o.cards) {
    bump(acc.byStatus, c.status);
    bump(acc.byForm, c.record.form);
    bump(acc.byIssuer, c.record.issuingBank);
    if (c.record.linkedCardNo !== null) acc.linked++;
    if (c.purseFen > 0n) { acc.purseAccounts++; acc.purseFen += c.purseFen; }
    if (c.medicalFen > 0n) { acc.medicalAccounts++; acc.medicalFen += c.medicalFen; }
    if (c.status === 'ACTIVE' && c.purseFen >= sample_purse_fen_min) {
      if (c.record.form === 'PHYSICAL' && physical.length < sample_active_physical) physical.push(c);
      if (c.record.form === 'ECARD' && ecard.length < sample_active_ecard) ecard.push(c);
    }
    if (c.status === 'LOST_REPORTED' && lost.length < sample_lost) lost.push(c);
    if (c.status === 'CANCELLED' && cancelled.length < sample_cancelled) cancelled.push(c);
  }
}

function buildSummary(plan: CityPlan, acc: Accumulator, keyStore: KeyStore | undefined): SeedSummary {
  const take = (slot: number, n: number) => acc.samples.flatMap((s) => s[slot]).slice(0, n);
  const samples = [...take(0, sample_active_physical), ...take(1, sample_active_ecard), ...take(2, sample_lost), ...take(3, sample_cancelled)];
  const terminalsOf = new Map<string, string[]>();
  for (const t of plan.terminals) {
    const list = terminalsOf.get(t.merchantId) ?? [];
    list.push(t.id);
    terminalsOf.set(t.merchantId, list);
  }
  const tacVectors: SeedSummary['tac_vectors'] = [];
  const versions = keyStore?.tacKeyVersions() ?? [];
  if (keyStore !== undefined && versions.length > 0) {
    for (const s of tacSamples(plan, samples.filter((c) => c.status === 'ACTIVE'), versions[versions.length - 1])) {
      tacVectors.push({
        card_no: s.cardNo, amount_fen: s.amountFen, txn_type: s.txnType, terminal_id: s.terminalId, terminal_seq: s.terminalSeq,
        local_time: s.localTime, key_version: s.keyVersion, tac: keyStore.computeTac(s.keyVersion, s.cardNo, s),
      });
    }
  }
  return {
    seed: plan.seed, cards: plan.cards, as_of: plan.asOf, business_date: plan.businessDate,
    banks: plan.banks.map((b, i) => ({ code: b.code, name: b.name, card_bin: plan.bankBins[i] })),
    medical_programme: { programme_id: plan.medicalProgramme.programmeId, bank_code: plan.medicalProgramme.bankCode, fund_account: programmeFundAccount(plan) },
    operators: plan.merchants.filter((m) => m.isOperator).map((m) => ({
      id: m.id, name: m.name, acquiring_bank: m.acquiringBank, terminal_ids: terminalsOf.get(m.id) ?? [],
      lines: plan.lines.filter((l) => l.operatorId === m.id).map((l) => ({
        line_id: l.lineId, terminal_ids: l.terminalIds,
        stations: l.stations.map((s) => ({ station_id: s.stationId, latitude: s.latitude, longitude: s.longitude })),
      })),
    })),
    merchants: plan.merchants.filter((m) => !m.isOperator).map((m) => ({
      id: m.id, name: m.name, kind: m.kind, acquiring_bank: m.acquiringBank, terminal_ids: terminalsOf.get(m.id) ?? [],
    })),
    fee_rules: Object.fromEntries(Object.entries(seed_fee_rules).map(([k, v]) => [k, { rate: v.rate, min_fen: String(v.minFen), max_fen: String(v.maxFen) }])),
    totals: {
      cards_by_status: sortKeys(acc.byStatus), cards_by_form: sortKeys(acc.byForm), cards_by_issuer: sortKeys(acc.byIssuer),
      linked_ecards: acc.linked, purse_accounts: acc.purseAccounts, purse_fen: String(acc.purseFen),
      medical_accounts: acc.medicalAccounts, medical_fen: String(acc.medicalFen),
      programme_deposits_fen: String(acc.depositsFen), programme_fund_fen: String(acc.depositsFen - acc.medicalFen),
    },
    sample_cards: samples.map((c) => ({
      card_no: c.record.cardNo, form: c.record.form, issuing_bank: c.record.issuingBank, status: c.status,
      linked_card_no: c.record.linkedCardNo, purse_fen: String(c.purseFen), medical_fen: String(c.medicalFen),
    })),
    tac_vectors: tacVectors,
    run: { reference_created: 0, cards_created: 0, cards_existing: 0, entries_written: 0, entries_replayed: 0, seconds: 0 },
  };
}

function sortKeys(m: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

// ------------------------------------------------------------------------------------ files

/** Write a file whole and private: a reader never sees half of it, and only its owner reads it. */
export function writePrivateFile(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text, { mode: 0o600 });
  fs.chmodSync(tmp, 0o600);
  fs.renameSync(tmp, file);
}

export function writeSeedSummary(dataDir: string, summary: SeedSummary): string {
  const file = path.join(dataDir, seed_summary_file);
  writePrivateFile(file, `${JSON.stringify(summary, null, 2)}\n`);
  return file;
}

// ------------------------------------------------------------------------------------- keys

export interface SeedKeySpec { name: string; role: Role; scopeId: string | null; label: string }

/** The demo keys: one per operator and bank, two merchants, the programme, two finance staff, an auditor. */
export function seedKeySpecs(summary: SeedSummary): SeedKeySpec[] {
  const safe = (s: string) => s.replace(/[^A-Za-z0-9_]/g, '_');
  const specs: SeedKeySpec[] = [];
  for (const o of summary.operators) specs.push({ name: `operator_${safe(o.id)}`, role: 'operator', scopeId: o.id, label: `demo operator ${o.id}` });
  for (const b of summary.banks) specs.push({ name: `bank_${b.code}`, role: 'bank', scopeId: b.code, label: `demo bank ${b.code}` });
  const hospital = summary.merchants.find((m) => m.kind === 'MEDICAL');
  const utility = summary.merchants.find((m) => m.kind === 'UTILITY');
  for (const m of [hospital, utility]) {
    if (m) specs.push({ name: `merchant_${safe(m.id)}`, role: 'merchant', scopeId: m.id, label: `demo merchant ${m.id}` });
  }
  const p = summary.medical_programme.programme_id;
  specs.push({ name: `programme_${safe(p)}`, role: 'programme', scopeId: p, label: `demo programme ${p}` });
  // Two finance keys: approvals will need a maker and a different checker.
  specs.push({ name: 'finance_1', role: 'finance', scopeId: null, label: 'demo finance (maker)' });
  specs.push({ name: 'finance_2', role: 'finance', scopeId: null, label: 'demo finance (checker)' });
  specs.push({ name: 'auditor', role: 'auditor', scopeId: null, label: 'demo auditor' });
  return specs;
}

export interface SeedKeysResult { file: string; created: number; reused: number; names: string[] }

/**
 * Make the demo keys, or keep the ones a previous run wrote to `file` while they still
 * authenticate with the same role and scope (so re-running the seed does not pile up keys).
 * Writes `file` (mode 0600): `{ "<name>": "<token>", ..., "_keys": { "<name>": {key_id, role, scope_id} } }`.
 */
export async function ensureSeedKeys(db: Db, summary: SeedSummary, file: string, actor: string): Promise<SeedKeysResult> {
  let previous: Record<string, unknown> = {};
  if (fs.existsSync(file)) {
    try {
      previous = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
    } catch {
      previous = {};
    }
  }
  const out: Record<string, unknown> = {};
  const meta: Record<string, { key_id: string; role: string; scope_id: string | null }> = {};
  let created = 0;
  let reused = 0;
  for (const spec of seedKeySpecs(summary)) {
    const old = previous[spec.name];
    if (typeof old === 'string') {
      const p = await authenticate(db, old);
      if (p !== null && p.role === spec.role && p.scopeId === spec.scopeId) {
        out[spec.name] = old;
        meta[spec.name] = { key_id: p.keyId, role: p.role, scope_id: p.scopeId };
        reused++;
        continue;
      }
    }
    const k = await createApiKey(db, spec.role, spec.scopeId, spec.label, actor);
    out[spec.name] = k.token;
    meta[spec.name] = { key_id: k.keyId, role: spec.role, scope_id: spec.scopeId };
    created++;
  }
  out._keys = meta;
  writePrivateFile(file, `${JSON.stringify(out, null, 2)}\n`);
  return { file, created, reused, names: Object.keys(meta) };
}
