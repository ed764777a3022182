/**
 * The card lifecycle the city's regulation describes, as actions a service desk (or the
 * cardholder through a service channel) takes, each moving a card between the statuses of
 * `card.status`. Pure: the caller reads the card, asks `planAction`, then writes what it says.
 *
 * The statuses are 0003's; the allowed moves are a subset of engine/reference/card-status.ts's
 * `card_status_transitions` (that table says what may follow what in any history; this one says
 * which desk action makes which move).
 */
import { conflict } from '../errors.ts';

export const card_statuses = ['ISSUED', 'ACTIVE', 'LOST_REPORTED', 'SUSPENDED', 'CANCELLED'] as const;
export type CardStatus = (typeof card_statuses)[number];

export const card_actions = ['ACTIVATE', 'REPORT_LOSS', 'UNFREEZE', 'REPLACE', 'CANCEL', 'SUSPEND', 'REINSTATE'] as const;
export type CardAction = (typeof card_actions)[number];

/** Statuses in which terminals must refuse the card: the hotlist. */
export const hotlisted_statuses: readonly CardStatus[] = ['LOST_REPORTED', 'SUSPENDED', 'CANCELLED'];

/**
 * Per action: the statuses it may start from and the status it leaves the card in. Why each
 * rule:
 * - a card is activated once, by its holder collecting it;
 * - a loss can be reported before activation (lost in the post) and for a suspended card (the
 *   suspension stays on record through the case; the card is off the street either way);
 * - only a lost card is "unfrozen" (found again): a suspended one needs a reinstatement;
 * - a suspended card cannot be replaced or cancelled: that would let the holder walk away from
 *   a misuse case with a fresh card or a refund; the case is closed first;
 * - a cancelled card is final.
 */
export const action_rules: Readonly<Record<CardAction, { from: readonly CardStatus[]; to: CardStatus }>> = {
  ACTIVATE: { from: ['ISSUED'], to: 'ACTIVE' },
  REPORT_LOSS: { from: ['ISSUED', 'ACTIVE', 'SUSPENDED'], to: 'LOST_REPORTED' },
  UNFREEZE: { from: ['LOST_REPORTED'], to: 'ACTIVE' },
  REPLACE: { from: ['ISSUED', 'ACTIVE', 'LOST_REPORTED'], to: 'CANCELLED' },
  CANCEL: { from: ['ISSUED', 'ACTIVE', 'LOST_REPORTED'], to: 'CANCELLED' },
  SUSPEND: { from: ['ISSUED', 'ACTIVE'], to: 'SUSPENDED' },
  REINSTATE: { from: ['SUSPENDED'], to: 'ACTIVE' },
};

export function isCardAction(s: string): s is CardAction {
  return (card_actions as readonly string[]).includes(s);
}

export function isCardStatus(s: string): s is CardStatus {
  return (card_statuses as readonly string[]).includes(s);
}

export interface PlannedTransition {
  action: CardAction;
  from: CardStatus;
  to: CardStatus;
  /** The card leaves or joins the terminals' hotlist. */
  hotlistChange: 'ADD' | 'REMOVE' | null;
}

/** The move `action` makes from `current`, or a 409 CARD_TRANSITION_INVALID naming both. */
export function planAction(current: CardStatus, action: CardAction): PlannedTransition {
  const rule = action_rules[action];
  if (!rule.from.includes(current)) {
    throw conflict('CARD_TRANSITION_INVALID', `A card that is ${current} cannot be ${describe(action)}.`, {
      status: current, action, allowed_from: [...rule.from],
    });
  }
  const was = hotlisted_statuses.includes(current);
  const will = hotlisted_statuses.includes(rule.to);
  return { action, from: current, to: rule.to, hotlistChange: was === will ? null : will ? 'ADD' : 'REMOVE' };
}

function describe(action: CardAction): string {
  switch (action) {
    case 'ACTIVATE': return 'activated';
    case 'REPORT_LOSS': return 'reported lost';
    case 'UNFREEZE': return 'unfrozen';
    case 'REPLACE': return 'replaced';
    case 'CANCEL': return 'cancelled';
    case 'SUSPEND': return 'suspended';
    case 'REINSTATE': return 'reinstated';
  }
}

/** Service channels a lifecycle request can come through (recorded with every action). */
export const service_channels = ['COUNTER', 'PHONE', 'APP', 'WEB', 'BANK_BRANCH', 'SYSTEM'] as const;
export type ServiceChannel = (typeof service_channels)[number];
