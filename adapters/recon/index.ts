/** Reconciliation: the run of a cycle, operator daily totals, and the exceptions workflow. */
export {
  assignException, commentOnException, exception_list_page_max, getException, listExceptions, parseExceptionRef, resolveException,
  resolveExceptionInTx,
} from './exceptions.ts';
export type {
  BankLineView, EngineLineView, ExceptionDetail, ExceptionEventView, ExceptionFilter, ExceptionRef, ExceptionSources, ExceptionView, ReconActor,
  ReconDeps, ResolveInput,
} from './exceptions.ts';
