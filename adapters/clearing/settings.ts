/**
 * Clearing settings the configuration does not carry yet: the centre's settlement bank and
 * account (configuration in SETTLEMENT-FILES.md) and where packages are stored.
 */
import path from 'node:path';
import type { CentreSettlementAccount } from '../bankfiles/index.ts';
import type { Config } from '../config.ts';

export interface ClearingSettings {
  readonly centre: CentreSettlementAccount;
  /** Packages live under `<packagesDir>/<cycle>/<bank>/`. */
  readonly packagesDir: string;
  readonly cutoff: string;
}

export const centre_bank_default = '999100000001';
export const centre_account_default = '99910000000100001';

export function clearingSettings(config: Config, env: NodeJS.ProcessEnv = process.env): ClearingSettings {
  return {
    centre: {
      bankCode: env.CLEARING_CENTRE_BANK ?? centre_bank_default,
      accountId: env.CLEARING_CENTRE_ACCOUNT ?? centre_account_default,
    },
    packagesDir: path.join(config.dataDir, 'packages'),
    cutoff: config.clearingCutoff,
  };
}
