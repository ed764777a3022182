export { Ledger, new_entries_argument_types, translatePgError } from './ledger.ts';
export type { AccountView, HoldInput, LedgerObserver, PostResult, Queryable, VerifyReport } from './ledger.ts';
export { accountSpecFor, balanceOf, linesFromLegs, validateEntry, batch_entries_max, entry_lines_max } from './rules.ts';
export type { AccountSpec, EntryInput, LineInput, NormalSide, OwnerType } from './rules.ts';
