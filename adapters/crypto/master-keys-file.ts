/**
 * Master keys for a development or single-machine install. Production configures
 * TAC_MASTER_KEYS, QR_MASTER_KEYS and PII_KEYS (or replaces the key store with an HSM); when none
 * of them is set, the engine makes random version-1 keys once and keeps them in
 * `<dataDir>/master-keys.env` (mode 0600), so a restart verifies what it signed before. Setting
 * some but not all of them is a configuration error: half a key set is never guessed at.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface MasterKeyStrings {
  tacMasterKeys: string;
  qrMasterKeys: string;
  piiKeys: string;
  /** Where they came from, for the start-up log (never the keys themselves). */
  source: 'environment' | string;
}

export const master_keys_file = 'master-keys.env';
const names = ['TAC_MASTER_KEYS', 'QR_MASTER_KEYS', 'PII_KEYS'] as const;

export function resolveMasterKeys(given: { tacMasterKeys?: string; qrMasterKeys?: string; piiKeys?: string }, dataDir: string): MasterKeyStrings {
  const values = [given.tacMasterKeys, given.qrMasterKeys, given.piiKeys];
  const set = values.filter((v) => v !== undefined && v.trim() !== '').length;
  if (set === 3) {
    return { tacMasterKeys: values[0] as string, qrMasterKeys: values[1] as string, piiKeys: values[2] as string, source: 'environment' };
  }
  if (set > 0) {
    throw new Error(`${names.join(', ')} must be set together (or none of them, for keys kept under the data directory)`);
  }
  const file = path.join(dataDir, master_keys_file);
  if (!fs.existsSync(file)) {
    fs.mkdirSync(dataDir, { recursive: true });
    const lines = names.map((n) => `${n}=1:${crypto.randomBytes(16).toString('hex').toUpperCase()}`);
    // 'wx': never overwrite keys another process wrote first.
    try {
      fs.writeFileSync(file, `${lines.join('\n')}\n`, { mode: 0o600, flag: 'wx' });
    } catch (e) {
      if ((e as { code?: string }).code !== 'EEXIST') throw e;
    }
  }
  const parsed = new Map<string, string>();
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) parsed.set(line.slice(0, eq).trim(), line.slice(eq + 1).trim());
  }
  const [tac, qr, pii] = names.map((n) => parsed.get(n));
  if (!tac || !qr || !pii) throw new Error(`${file} must define ${names.join(', ')}`);
  return { tacMasterKeys: tac, qrMasterKeys: qr, piiKeys: pii, source: file };
}
