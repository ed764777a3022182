/**
 * The demo city: a deterministic, realistic set of reference data and opening balances, from a
 * seed. Pure: the same (seed, as-of) gives the same banks, operators, terminals and merchants,
 * and card i is a function of (seed, i) alone, so a city of 2,000 cards is the first 2,000 cards
 * of the city of 100,000 with the same seed. Writing it is adapters/reference/seed.ts.
 *
 * The city is modelled on Shiyan, Hubei (administrative code 420300, which the spec's sample
 * terminal ids start with): six cooperating banks, two bus operators with 2,000 buses on lines
 * around the city centre, hospitals and pharmacies with QR scanners, utilities and shops.
 *
 * Opening balances are ledger entries dated the as-of business date, keyed by seed and card, so
 * writing the same city twice posts nothing the second time:
 *   PURSE_LOAD          bank:{issuer}:clearing        → card:{n}:purse
 *   PROGRAMME_DEPOSIT   bank:{insurer's bank}:clearing → programme:MEDICAL_INSURANCE:fund
 *   MEDICAL_ALLOCATION  programme:MEDICAL_INSURANCE:fund → card:{n}:medical
 * The programme fund may not go negative, so each chunk of cards is funded first: one deposit
 * per chunk of `seed_cards_per_chunk` card indices, for the whole chunk (also the indices beyond
 * the city's card count). That keeps a chunk's deposit the same whatever the card count, so a
 * city can later be grown with more cards and the surplus is the fund's unallocated reserve.
 */
import type { EntryInput } from '../../ledger/index.ts';
import { shanghaiDate } from '../clearing/calendar.ts';
import { badRequest } from '../errors.ts';
import { hash32, Rng } from './prng.ts';
import type { BankRecord, CardRecord, CardStatus, CardStatusStep, FeeScheduleRecord, MerchantRecord, TerminalRecord } from './records.ts';

// ---------------------------------------------------------------------------------------------
// Limits and fixed facts of the city
// ---------------------------------------------------------------------------------------------

export const seed_cards_default = 100_000;
export const seed_cards_max = 5_000_000;
export const seed_max = 0xffff_ffff;
/**
 * Cards per write (one transaction, one ledger batch: ≤ 2 entries per card + 1 deposit must stay
 * under the ledger's 10,000-entry batch). Part of the seed's format: the medical deposit is keyed
 * by chunk, so changing this changes what a re-run posts.
 */
export const seed_cards_per_chunk = 4_000;
/** Opening balances and card histories end here unless told otherwise (fixed, so re-runs match). */
export const seed_as_of_default = '2026-11-01';
export const medical_programme_id = 'MEDICAL_INSURANCE';
export const fee_schedules_effective_from = '2024-01-01';

/** The city centre (Shiyan), in micro-degrees; coordinates are integers until formatted. */
const centre_lat_udeg = 32_629_630;
const centre_lon_udeg = 110_798_000;
/** Metres to micro-degrees at this latitude (1° lat ≈ 111.32 km, 1° lon ≈ 93.8 km at 32.6° N). */
const m_per_deg_lat = 111_320;
const m_per_deg_lon = 93_800;
const city_radius_m = 9_000;
const station_spacing_m_min = 350;
const station_spacing_m_max = 900;

const day_ms = 86_400_000;
const card_age_days_min = 30;
const card_age_days_max = 1_500;
const activation_delay_s_max = 3 * 86_400;
const lost_per_mille = 2;
const cancelled_per_mille = 1;
const ecard_per_mille = 300;
const linked_ecard_per_mille = 700;
/** A chip purse holds at most 1,000 yuan. */
const purse_fen_max = 100_000;
const medical_fen_max = 300_000;

interface BankTemplate { classCode: string; name: string; bin: string; weight: number }
const bank_templates: readonly BankTemplate[] = [
  { classCode: '102', name: '中国工商银行股份有限公司十堰分行', bin: '621226', weight: 30 },
  { classCode: '103', name: '中国农业银行股份有限公司十堰分行', bin: '622848', weight: 20 },
  { classCode: '104', name: '中国银行股份有限公司十堰分行', bin: '621661', weight: 15 },
  { classCode: '105', name: '中国建设银行股份有限公司十堰分行', bin: '621700', weight: 15 },
  { classCode: '301', name: '交通银行股份有限公司十堰分行', bin: '622262', weight: 10 },
  { classCode: '402', name: '湖北十堰农村商业银行股份有限公司', bin: '623059', weight: 10 },
];
/** CNAPS region part of the demo banks' codes. */
const cnaps_region = '5230';

interface OperatorTemplate { id: string; name: string; terminalClass: string; terminals: number; lines: number; linePrefix: string }
const operator_templates: readonly OperatorTemplate[] = [
  { id: 'OPBUS01', name: '十堰市公共交通集团有限公司', terminalClass: '01', terminals: 1_200, lines: 40, linePrefix: 'B' },
  { id: 'OPBUS02', name: '十堰城区快速公交有限公司', terminalClass: '02', terminals: 800, lines: 25, linePrefix: 'K' },
];

const hospital_names = [
  '十堰市太和医院', '十堰市人民医院', '国药东风总医院', '十堰市中医医院', '十堰市妇幼保健院', '十堰市第二人民医院',
  '十堰市茅箭区人民医院', '十堰市张湾区人民医院', '十堰市郧阳区人民医院', '湖北医药学院附属人民医院', '十堰市口腔医院', '十堰市精神卫生中心',
];
const pharmacy_brands = ['国药大药房', '老百姓大药房', '益丰大药房', '漱玉平民大药房', '同仁堂药店', '九州通好药师'];
const districts = ['茅箭', '张湾', '郧阳', '武当山', '东岳', '五堰', '六堰', '车城', '花果', '红卫', '汉江', '白浪', '大川', '柳林'];
const pharmacies = 28;
const utility_templates = [
  { id: 'UTIL-WATER', name: '十堰市水务集团有限公司' },
  { id: 'UTIL-POWER', name: '国网湖北省电力有限公司十堰供电公司' },
  { id: 'UTIL-GAS', name: '十堰市燃气有限公司' },
] as const;
const retail_names = ['武商十堰购物中心', '人民商场', '万达广场十堰店', '沃尔玛十堰北京路店', '中百仓储五堰店'];

/** Fee schedules by merchant class: fee = clamp(round_half_up(amount × rate), min, max). */
export const seed_fee_rules = {
  TRANSIT: { rate: '0.003', minFen: 0n, maxFen: 50n },
  HOSPITAL: { rate: '0.002', minFen: 0n, maxFen: 2_000n },
  PHARMACY: { rate: '0.0038', minFen: 0n, maxFen: 1_000n },
  UTILITY: { rate: '0.001', minFen: 0n, maxFen: 500n },
  RETAIL: { rate: '0.006', minFen: 1n, maxFen: 5_000n },
} as const;

// ---------------------------------------------------------------------------------------------
// The plan
// ---------------------------------------------------------------------------------------------

export interface SeedOptions {
  seed: number;
  cards: number;
  /** YYYY-MM-DD (Asia/Shanghai): histories end before it; opening balances are dated it. */
  asOf?: string;
}

export interface PlannedStation { stationId: string; latitude: string; longitude: string }
export interface PlannedLine { operatorId: string; lineId: string; stations: PlannedStation[]; terminalIds: string[] }

export interface CityPlan {
  seed: number;
  cards: number;
  asOf: string;
  /** Local midnight starting the as-of date: every card status time is before it. */
  asOfInstant: Date;
  businessDate: string;
  banks: BankRecord[];
  /** Parallel to `banks`: each bank's card BIN and its share of issued cards. */
  bankBins: string[];
  bankWeights: number[];
  medicalProgramme: { programmeId: string; bankCode: string };
  merchants: MerchantRecord[];
  feeSchedules: FeeScheduleRecord[];
  terminals: TerminalRecord[];
  lines: PlannedLine[];
  /** Card numbers come from a seeded permutation of the index: serial = (A·i + B) mod 10^12. */
  serialA: bigint;
  serialB: bigint;
}

export interface PlannedCard {
  index: number;
  record: CardRecord;
  status: CardStatus;
  purseFen: bigint;
  medicalFen: bigint;
}

/** Salts so that each kind of draw has its own stream. */
const salt = { banks: 1, merchants: 2, lines: 3, serial: 4, card: 5, accounts: 6 } as const;

export function checkSeedOptions(o: SeedOptions): Required<SeedOptions> {
  if (!Number.isInteger(o.seed) || o.seed < 0 || o.seed > seed_max) throw badRequest('SEED_INVALID', `The seed is a whole number 0..${seed_max}.`);
  if (!Number.isInteger(o.cards) || o.cards < 0 || o.cards > seed_cards_max) throw badRequest('SEED_CARDS_INVALID', `The card count is a whole number 0..${seed_cards_max}.`);
  const asOf = o.asOf ?? seed_as_of_default;
  if (!/^\d{4}-\d{2}-\d{2}$/.test(asOf) || shanghaiDate(asOfInstantOf(asOf)) !== asOf) {
    throw badRequest('SEED_AS_OF_INVALID', 'The as-of date is a calendar date YYYY-MM-DD.');
  }
  return { seed: o.seed, cards: o.cards, asOf };
}

function asOfInstantOf(asOf: string): Date {
  return new Date(`${asOf}T00:00:00+08:00`);
}

/** A check digit over a digit string (weights 3,7,9 repeating), so generated codes look issued. */
function weightedCheckDigit(digits: string): string {
  const w = [3, 7, 9];
  let s = 0;
  for (let i = 0; i < digits.length; i++) s += Number(digits[i]) * w[i % 3];
  return String((10 - (s % 10)) % 10);
}

/** The Luhn check digit that makes `partial` + digit a valid PAN. */
export function luhnCheckDigit(partial: string): string {
  let sum = 0;
  let double = true;
  for (let i = partial.length - 1; i >= 0; i--) {
    let d = partial.charCodeAt(i) - 48;
    if (double) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
    double = !double;
  }
  return String((10 - (sum % 10)) % 10);
}

export function isLuhnValid(pan: string): boolean {
  return luhnCheckDigit(pan.slice(0, -1)) === pan.slice(-1);
}

function fmtUdeg(udeg: number): string {
  const sign = udeg < 0 ? '-' : '';
  const a = Math.abs(udeg);
  return `${sign}${Math.floor(a / 1_000_000)}.${String(a % 1_000_000).padStart(6, '0')}`;
}

const mToLatUdeg = (m: number) => Math.round((m * 1_000_000) / m_per_deg_lat);
const mToLonUdeg = (m: number) => Math.round((m * 1_000_000) / m_per_deg_lon);

/**
 * Everything but the cards. Cheap (a few thousand records), so callers make it whenever they
 * need it; the cards are made a chunk at a time by `planCards`.
 */
export function planCity(options: SeedOptions): CityPlan {
  const { seed, cards, asOf } = checkSeedOptions(options);
  const bankRng = new Rng(hash32(seed, salt.banks));
  const banks: BankRecord[] = [];
  for (const t of bank_templates) {
    const body = `${t.classCode}${cnaps_region}${bankRng.digits(4)}`;
    banks.push({ code: `${body}${weightedCheckDigit(body)}`, name: t.name });
  }
  const bankCode = (i: number) => banks[i].code;

  const m = new Rng(hash32(seed, salt.merchants));
  const account = () => `${m.pick(['6222', '6228', '6217', '6230'])}${m.digits(15)}`;
  const merchants: MerchantRecord[] = [];
  const feeSchedules: FeeScheduleRecord[] = [];
  const terminals: TerminalRecord[] = [];
  const fee = (merchantId: string, rule: { rate: string; minFen: bigint; maxFen: bigint }) =>
    feeSchedules.push({ merchantId, effectiveFrom: fee_schedules_effective_from, rate: rule.rate, minFen: rule.minFen, maxFen: rule.maxFen });
  const scatter = (radiusM: number) => ({
    lat: centre_lat_udeg + mToLatUdeg(m.int(-radiusM, radiusM)),
    lon: centre_lon_udeg + mToLonUdeg(m.int(-radiusM, radiusM)),
  });

  // Transit operators, their lines (stations walked out from a start near the centre), buses.
  const lines: PlannedLine[] = [];
  const lineRng = new Rng(hash32(seed, salt.lines));
  operator_templates.forEach((op) => {
    merchants.push({
      id: op.id, name: op.name, kind: 'TRANSIT', isOperator: true, acquiringBank: bankCode(m.int(0, banks.length - 1)),
      settlementAccount: account(), status: 'ACTIVE',
    });
    fee(op.id, seed_fee_rules.TRANSIT);
    const opLines: PlannedLine[] = [];
    for (let l = 0; l < op.lines; l++) {
      const lineId = `${op.linePrefix}${String(l + 1).padStart(3, '0')}`;
      let lat = centre_lat_udeg + mToLatUdeg(lineRng.int(-city_radius_m / 2, city_radius_m / 2));
      let lon = centre_lon_udeg + mToLonUdeg(lineRng.int(-city_radius_m / 2, city_radius_m / 2));
      // A heading as a (north, east) step in per-mille, so a line runs roughly straight.
      const north = lineRng.int(-1000, 1000);
      const east = lineRng.int(-1000, 1000) || 1;
      const norm = Math.max(Math.abs(north), Math.abs(east));
      const stations: PlannedStation[] = [];
      const stationCount = lineRng.int(12, 30);
      for (let s = 0; s < stationCount; s++) {
        stations.push({ stationId: `${lineId}-S${String(s + 1).padStart(2, '0')}`, latitude: fmtUdeg(lat), longitude: fmtUdeg(lon) });
        const step = lineRng.int(station_spacing_m_min, station_spacing_m_max);
        const wobble = lineRng.int(-150, 150);
        lat += mToLatUdeg(Math.round((step * north) / norm) + wobble);
        lon += mToLonUdeg(Math.round((step * east) / norm) - wobble);
      }
      opLines.push({ operatorId: op.id, lineId, stations, terminalIds: [] });
    }
    for (let t = 0; t < op.terminals; t++) {
      const line = opLines[t % opLines.length];
      const station = line.stations[Math.floor(t / opLines.length) % line.stations.length];
      const id = `4203${op.terminalClass}${String(t + 1).padStart(6, '0')}`;
      line.terminalIds.push(id);
      terminals.push({
        id, merchantId: op.id, stationId: station.stationId, lineId: line.lineId,
        latitude: station.latitude, longitude: station.longitude, status: 'ACTIVE',
      });
    }
    lines.push(...opLines);
  });

  let scanner = 0;
  const scannerFor = (merchantId: string, cls: string) => {
    const p = scatter(city_radius_m);
    terminals.push({
      id: `4203${cls}${String(++scanner).padStart(6, '0')}`, merchantId, stationId: null, lineId: null,
      latitude: fmtUdeg(p.lat), longitude: fmtUdeg(p.lon), status: 'ACTIVE',
    });
  };
  const merchant = (id: string, merchantName: string, kind: MerchantRecord['kind']) =>
    merchants.push({ id, name: merchantName, kind, isOperator: false, acquiringBank: bankCode(m.int(0, banks.length - 1)), settlementAccount: account(), status: 'ACTIVE' });

  hospital_names.forEach((hn, i) => {
    const id = `HOSP${String(i + 1).padStart(2, '0')}`;
    merchant(id, hn, 'MEDICAL');
    fee(id, seed_fee_rules.HOSPITAL);
    scannerFor(id, '90');
  });
  for (let i = 0; i < pharmacies; i++) {
    const id = `PHARM${String(i + 1).padStart(2, '0')}`;
    merchant(id, `${m.pick(pharmacy_brands)}${m.pick(districts)}${i + 1}号店`, 'MEDICAL');
    fee(id, seed_fee_rules.PHARMACY);
    scannerFor(id, '90');
  }
  scanner = 0;
  for (const u of utility_templates) {
    merchant(u.id, u.name, 'UTILITY');
    fee(u.id, seed_fee_rules.UTILITY);
    scannerFor(u.id, '91');
  }
  scanner = 0;
  retail_names.forEach((rn, i) => {
    const id = `SHOP${String(i + 1).padStart(2, '0')}`;
    merchant(id, rn, 'RETAIL');
    fee(id, seed_fee_rules.RETAIL);
    scannerFor(id, '92');
  });

  const serialRng = new Rng(hash32(seed, salt.serial));
  // A must be coprime to 10^12 (odd, not a multiple of 5) for i ↦ A·i + B to be a permutation.
  let serialA = BigInt(serialRng.u32()) * 4_096n + BigInt(serialRng.u32() % 4_096) + 1n;
  if (serialA % 2n === 0n) serialA += 1n;
  if (serialA % 5n === 0n) serialA += 2n;
  const serialB = BigInt(serialRng.u32()) * 256n + BigInt(serialRng.u32() % 256);

  return {
    seed, cards, asOf, asOfInstant: asOfInstantOf(asOf), businessDate: asOf,
    banks, bankBins: bank_templates.map((t) => t.bin), bankWeights: bank_templates.map((t) => t.weight),
    medicalProgramme: { programmeId: medical_programme_id, bankCode: banks[0].code },
    merchants, feeSchedules, terminals, lines, serialA, serialB,
  };
}

const serial_modulus = 10n ** 12n;

/** The first draws of card i: its form, own bank and whether an e-card wants a twin. */
function cardBasics(plan: CityPlan, index: number): { form: 'PHYSICAL' | 'ECARD'; bank: number; wantsTwin: boolean; rng: Rng } {
  const rng = new Rng(hash32(plan.seed, salt.card, index));
  const form = rng.chancePerMille(ecard_per_mille) ? 'ECARD' : 'PHYSICAL';
  const bank = rng.weighted(plan.bankWeights);
  const wantsTwin = rng.chancePerMille(linked_ecard_per_mille);
  return { form, bank, wantsTwin, rng };
}

/**
 * The fixed facts of card i: number, form, issuing bank and twin. An e-card may be the twin of
 * the physical card just before it, issued by the same bank (so its number carries that BIN).
 */
function cardCore(plan: CityPlan, index: number): { cardNo: string; form: 'PHYSICAL' | 'ECARD'; bank: number; linkedTo: number | null; rng: Rng } {
  const b = cardBasics(plan, index);
  let bank = b.bank;
  let linkedTo: number | null = null;
  // Never across a chunk boundary: chunks are written concurrently, and a twin's physical card
  // must be committed (or in the same statement) when the e-card row is inserted.
  if (b.form === 'ECARD' && b.wantsTwin && index % seed_cards_per_chunk !== 0) {
    const prev = cardBasics(plan, index - 1);
    if (prev.form === 'PHYSICAL') {
      linkedTo = index - 1;
      bank = prev.bank;
    }
  }
  const serial = (plan.serialA * BigInt(index) + plan.serialB) % serial_modulus;
  const partial = `${plan.bankBins[bank]}${serial.toString().padStart(12, '0')}`;
  return { cardNo: `${partial}${luhnCheckDigit(partial)}`, form: b.form, bank, linkedTo, rng: b.rng };
}

/** Card `index` of the city: number, issuer, history and opening balances. */
export function planCard(plan: CityPlan, index: number): PlannedCard {
  const core = cardCore(plan, index);
  const rng = core.rng;
  const bank = core.bank;
  const linkedCardNo = core.linkedTo === null ? null : cardCore(plan, core.linkedTo).cardNo;
  const asOfMs = plan.asOfInstant.getTime();
  const issuedMs = asOfMs - rng.int(card_age_days_min, card_age_days_max) * day_ms + rng.int(7 * 3600, 18 * 3600) * 1000 - day_ms;
  const activatedMs = issuedMs + rng.int(600, activation_delay_s_max) * 1000;
  const history: CardStatusStep[] = [
    { status: 'ISSUED', effectiveAt: new Date(issuedMs) },
    { status: 'ACTIVE', effectiveAt: new Date(activatedMs) },
  ];
  const fate = rng.u32() % 1000;
  // After activation (at most 3 days after issue, at least 27 days before as-of), before as-of.
  const laterMs = asOfMs - rng.int(1, 25 * 86_400) * 1000;
  let status: CardStatus = 'ACTIVE';
  if (fate < cancelled_per_mille) status = 'CANCELLED';
  else if (fate < cancelled_per_mille + lost_per_mille) status = 'LOST_REPORTED';
  if (status !== 'ACTIVE') history.push({ status, effectiveAt: new Date(laterMs) });

  let purseFen = 0n;
  if (status !== 'CANCELLED' && !rng.chancePerMille(50)) {
    purseFen = BigInt(rng.chancePerMille(100) ? rng.int(20_000, purse_fen_max) : rng.int(100, 20_000));
  }
  let medicalFen = 0n;
  // The medical account belongs to the person: kept on the physical card, not on its e-card twin.
  if (status !== 'CANCELLED' && linkedCardNo === null && !rng.chancePerMille(100)) {
    medicalFen = BigInt(rng.int(1_000, medical_fen_max));
  }
  return {
    index,
    record: {
      cardNo: core.cardNo, issuingBank: plan.banks[bank].code, form: core.form, linkedCardNo, personId: null,
      dailyLimitFen: 500_000n, history,
    },
    status, purseFen, medicalFen,
  };
}

/** Cards `from` ≤ i < `to`, in index order. */
export function planCards(plan: CityPlan, from: number, to: number): PlannedCard[] {
  const out: PlannedCard[] = [];
  for (let i = from; i < to; i++) out.push(planCard(plan, i));
  return out;
}

export function chunkCount(plan: CityPlan): number {
  return Math.ceil(plan.cards / seed_cards_per_chunk);
}

/** The card indices of chunk k that exist in this city. */
export function chunkRange(plan: CityPlan, chunk: number): { from: number; to: number } {
  const from = chunk * seed_cards_per_chunk;
  return { from, to: Math.min(plan.cards, from + seed_cards_per_chunk) };
}

/**
 * The medical deposit of chunk k: the medical balances of every index of the chunk, including
 * indices past the city's card count (see the file comment). `cards` are the chunk's planned
 * cards, reused; the rest are planned here.
 */
export function chunkMedicalDepositFen(plan: CityPlan, chunk: number, cards: readonly PlannedCard[]): bigint {
  let sum = 0n;
  for (const c of cards) sum += c.medicalFen;
  const { to } = chunkRange(plan, chunk);
  for (let i = to; i < (chunk + 1) * seed_cards_per_chunk; i++) sum += planCard(plan, i).medicalFen;
  return sum;
}

export const seed_entry_kinds = { purseLoad: 'PURSE_LOAD', programmeDeposit: 'PROGRAMME_DEPOSIT', medicalAllocation: 'MEDICAL_ALLOCATION' } as const;

export const seedKey = {
  deposit: (plan: CityPlan, chunk: number) => `seed:${plan.seed}:medical-deposit:${chunk}`,
  purse: (plan: CityPlan, cardNo: string) => `seed:${plan.seed}:purse-load:${cardNo}`,
  medical: (plan: CityPlan, cardNo: string) => `seed:${plan.seed}:medical-allocation:${cardNo}`,
};

export const programmeFundAccount = (plan: CityPlan) => `programme:${plan.medicalProgramme.programmeId}:fund`;

/** The opening-balance entries of one chunk: its deposit first, then each card's loads. */
export function chunkEntries(plan: CityPlan, chunk: number, cards: readonly PlannedCard[]): EntryInput[] {
  const entries: EntryInput[] = [];
  const fund = programmeFundAccount(plan);
  const deposit = chunkMedicalDepositFen(plan, chunk, cards);
  if (deposit > 0n) {
    entries.push({
      idemKey: seedKey.deposit(plan, chunk), kind: seed_entry_kinds.programmeDeposit, businessDate: plan.businessDate,
      description: `Medical insurance funding of demo cards ${chunk * seed_cards_per_chunk}..${(chunk + 1) * seed_cards_per_chunk - 1}`,
      lines: [{ debit: `bank:${plan.medicalProgramme.bankCode}:clearing`, credit: fund, amountFen: deposit }],
    });
  }
  for (const c of cards) {
    if (c.purseFen > 0n) {
      entries.push({
        idemKey: seedKey.purse(plan, c.record.cardNo), kind: seed_entry_kinds.purseLoad, businessDate: plan.businessDate,
        description: 'Opening purse balance (demo city)',
        lines: [{ debit: `bank:${c.record.issuingBank}:clearing`, credit: `card:${c.record.cardNo}:purse`, amountFen: c.purseFen }],
      });
    }
    if (c.medicalFen > 0n) {
      entries.push({
        idemKey: seedKey.medical(plan, c.record.cardNo), kind: seed_entry_kinds.medicalAllocation, businessDate: plan.businessDate,
        description: 'Opening medical account balance (demo city)',
        lines: [{ debit: fund, credit: `card:${c.record.cardNo}:medical`, amountFen: c.medicalFen }],
      });
    }
  }
  return entries;
}

/** A tap whose TAC a tester can recompute with the engine's key store (see the seed summary). */
export interface TacSample {
  cardNo: string;
  amountFen: number;
  txnType: number;
  terminalId: string;
  terminalSeq: number;
  localTime: string;
  keyVersion: number;
}

/** Three sample taps on the first operator's first bus, on the as-of date's morning. */
export function tacSamples(plan: CityPlan, cards: readonly PlannedCard[], keyVersion: number): TacSample[] {
  const terminal = plan.lines[0]?.terminalIds[0];
  if (terminal === undefined) return [];
  const day = plan.asOf.replaceAll('-', '');
  return cards.slice(0, 3).map((c, i) => ({
    cardNo: c.record.cardNo, amountFen: 200, txnType: 9, terminalId: terminal, terminalSeq: i + 1,
    localTime: `${day}07${String(30 + i).padStart(2, '0')}15`, keyVersion,
  }));
}
