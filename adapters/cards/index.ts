/** Cards' Postgres side: persons, applications, lifecycle, hotlist, cases, misuse job, complaints, PII rotation. */
export { hotlistVersion, parsePersonId, personIdText, system_actor, writeStatusChanges } from './common.ts';
export type { Actor, CardRow } from './common.ts';
export { findPersonIds, nationalIdIndex, person_search_results_max, phoneIndex, readPerson, readPersons } from './persons.ts';
export type { PersonView } from './persons.ts';
export { applyForCard, getApplication, issueCard } from './applications.ts';
export type { ApplicationInput, ApplicationResult } from './applications.ts';
export { performCardAction, performCardActionInTx } from './lifecycle.ts';
export type { CardActionRequest, CardActionResult, LifecycleDeps } from './lifecycle.ts';
export { hotlist_page_default, hotlist_page_max, hotlistDelta, hotlistPage } from './hotlist.ts';
export { assignCase, case_list_page_max, collectRecovery, confirmCase, dismissCase, getCase, listCases, openCase } from './cases.ts';
export type { CaseDetail, CaseFilter, CaseView, CollectionInput, ConfirmInput, OpenCaseInput } from './cases.ts';
export { accepted_taps_source, detectMisuse, loadTaps, localTimeToInstant, misuse_actor, raiseMisuseCases } from './misuse.ts';
export type { MisuseRun, TapSource } from './misuse.ts';
export {
  complaint_list_page_max, fileComplaint, getComplaintDetail, getComplaintPublic, listComplaints, public_actor, stepComplaint,
} from './complaints.ts';
export type { ComplaintDetail, ComplaintInput, ComplaintSummary, FiledComplaint, PublicComplaintView } from './complaints.ts';
export { remainingToRotate, rotatePii, rotation_batch_rows_default, sealed_tables } from './pii-rotation.ts';
export type { RotationProgress, RotationReport } from './pii-rotation.ts';
export { cards_options_default, cardsOptionsFromConfig, cardsOptionsFromEnv, rate_limit_ips_max } from './options.ts';
export type { CardsOptions } from './options.ts';
export { actorOf, cursorOf, purposeOf, redacting_log_serializers, redactUrl } from './http.ts';
