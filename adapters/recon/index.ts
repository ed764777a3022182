/** Reconciliation: the run of a cycle, operator daily totals, and the exceptions workflow. */
export {
  assignException, commentOnException, exception_list_page_max, getException, listExceptions, parseExceptionRef, resolveException,
  resolveExceptionInTx,
} from './exceptions.ts';
export type {
  BankLineView, EngineLineView, ExceptionDetail, ExceptionEventView, ExceptionFilter, ExceptionRef, ExceptionSources, ExceptionView, ReconActor,
  ReconDeps, ResolveInput,
} from './exceptions.ts';
export { listRuns, pending_cycles_max, reconcilable_states, reconcileCycle, reconcilePending, run_list_page_max } from './run.ts';
export type { ReconRunResult, RunDeps, RunView } from './run.ts';
export { listOperatorTotals, parseCsvTotals, parseJsonTotals, receiveOperatorTotals, upload_list_page_max } from './operator-totals.ts';
export type { TotalsFormat, UploadView } from './operator-totals.ts';
