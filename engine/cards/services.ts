/**
 * The public catalogue of one-card services (GET /v1/services): what a cardholder can ask for,
 * on what conditions, in which steps, and how long it takes. Data, so a change of the service
 * rules is an edit here, reviewed like code.
 */
export interface ServiceEntry {
  id: string;
  name: string;
  /** The API route staff (or the app) use; null for services without one. */
  route: string | null;
  channels: readonly string[];
  conditions: readonly string[];
  steps: readonly string[];
  /** What the city regulation promises, in plain words. */
  time_limit: string;
  fee_fen: number;
}

export const services_catalogue_version = '2026-1';

export const services_catalogue: readonly ServiceEntry[] = [
  {
    id: 'apply',
    name: 'Apply for a social security card (physical card and e-card)',
    route: 'POST /v1/card-applications',
    channels: ['COUNTER', 'APP', 'WEB', 'BANK_BRANCH'],
    conditions: [
      'Eligible on one basis: local household registration, the city residence permit, employee or resident social insurance in the city, an HMT residence permit, or a foreign permanent residence ID.',
      'A valid national ID number (GB 11643); holders of a permit give its expiry date.',
      'One card per person: a person whose card is still valid asks for a replacement instead.',
    ],
    steps: ['Submit the application with ID and eligibility basis.', 'The card is issued (status ISSUED) with its linked e-card.', 'Collect the card and activate it.'],
    time_limit: 'E-card at once; physical card within 20 working days.',
    fee_fen: 0,
  },
  {
    id: 'activate',
    name: 'Activate a card',
    route: 'POST /v1/cards/{cardNo}/activation',
    channels: ['COUNTER', 'APP', 'BANK_BRANCH'],
    conditions: ['The card is ISSUED and collected by its holder.'],
    steps: ['Present ID at collection or confirm in the app.'],
    time_limit: 'At once.',
    fee_fen: 0,
  },
  {
    id: 'report-loss',
    name: 'Report a lost card (temporary freeze)',
    route: 'POST /v1/cards/{cardNo}/loss-reports',
    channels: ['PHONE', 'APP', 'WEB', 'COUNTER', 'BANK_BRANCH'],
    conditions: ['The card is ISSUED, ACTIVE or SUSPENDED.'],
    steps: ['Report by phone, app, web or at a counter.', 'The card is refused by terminals from that moment (the hotlist).'],
    time_limit: 'Effective at once, 24 hours a day; terminals refuse the card from their next hotlist update.',
    fee_fen: 0,
  },
  {
    id: 'unfreeze',
    name: 'Unfreeze a card found again',
    route: 'POST /v1/cards/{cardNo}/unfreeze',
    channels: ['COUNTER', 'APP', 'BANK_BRANCH'],
    conditions: ['The card is LOST_REPORTED and back in its holder\'s hands.'],
    steps: ['Confirm identity.', 'The card leaves the hotlist.'],
    time_limit: 'At once.',
    fee_fen: 0,
  },
  {
    id: 'replace',
    name: 'Replace a lost or damaged card',
    route: 'POST /v1/cards/{cardNo}/replacements',
    channels: ['COUNTER', 'BANK_BRANCH'],
    conditions: ['The card is ISSUED, ACTIVE or LOST_REPORTED (not suspended for misuse).'],
    steps: [
      'A new card number is issued; the old card is cancelled.',
      'The e-purse and medical account balances move to the new card.',
      'The e-card follows the new card.',
    ],
    time_limit: 'New card within 20 working days; balances moved at once.',
    fee_fen: 0,
  },
  {
    id: 'cancel',
    name: 'Cancel a card',
    route: 'POST /v1/cards/{cardNo}/cancellation',
    channels: ['COUNTER', 'BANK_BRANCH'],
    conditions: ['The card is ISSUED, ACTIVE or LOST_REPORTED (not suspended for misuse).'],
    steps: ['The card and its e-card are cancelled.', 'The remaining balance is refunded to the holder\'s account at the issuing bank.'],
    time_limit: 'Cancelled at once; refund with the issuing bank\'s next settlement.',
    fee_fen: 0,
  },
  {
    id: 'suspend',
    name: 'Suspension of social security functions (misuse)',
    route: 'POST /v1/cards/{cardNo}/suspensions',
    channels: ['SYSTEM', 'COUNTER'],
    conditions: ['A card lent out for profit or otherwise misused, with a case on record.'],
    steps: ['Staff suspend the card with a reason and the case.', 'Reinstatement follows when the case is resolved.'],
    time_limit: 'Effective at once.',
    fee_fen: 0,
  },
  {
    id: 'complain',
    name: 'File a complaint',
    route: 'POST /v1/complaints',
    channels: ['WEB', 'APP', 'PHONE', 'COUNTER'],
    conditions: ['Anyone: a cardholder, a merchant or a member of the public.'],
    steps: [
      'File the complaint with a contact; keep the access code you are given.',
      'Staff answer it; read the answer with the complaint id and the access code.',
    ],
    time_limit: 'Answered within 15 days of filing.',
    fee_fen: 0,
  },
];
