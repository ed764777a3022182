/**
 * A card's status over time. Loss reports and cancellations are recorded with the instant they
 * take effect (`effective_at`), which may be earlier than when they were recorded: a cardholder
 * phones at 09:00 to say the card was lost at 08:00. Offline taps arrive hours later, so
 * ingestion asks "what was this card's status at the tap's local time?", never "what is it now?".
 * Pure: no I/O, no clock.
 */
import type { CardStatus } from './records.ts';

export interface CardStatusEvent {
  status: CardStatus;
  effectiveAt: Date;
  /**
   * Recording order (the database id). Two events effective at the same instant are ordered by
   * it: the later-recorded one wins. Without ids, the later position in the array wins.
   */
  id?: bigint | number;
}

/** True if `b` is later than `a` in the card's history (effective time, then recording order). */
function later(a: CardStatusEvent, aIndex: number, b: CardStatusEvent, bIndex: number): boolean {
  const ta = a.effectiveAt.getTime();
  const tb = b.effectiveAt.getTime();
  if (tb !== ta) return tb > ta;
  if (a.id !== undefined && b.id !== undefined && a.id !== b.id) return BigInt(b.id) > BigInt(a.id);
  return bIndex > aIndex;
}

/**
 * The event in force at `at`: the latest one effective at or before it (ties: the later
 * recorded). Undefined when the card had no status yet (not issued at that instant).
 * Events may come in any order.
 */
export function eventInForceAt<E extends CardStatusEvent>(events: readonly E[], at: Date): E | undefined {
  const t = at.getTime();
  let best: E | undefined;
  let bestIndex = -1;
  for (let i = 0; i < events.length; i++) {
    const e = events[i];
    if (e.effectiveAt.getTime() > t) continue;
    if (best === undefined || later(best, bestIndex, e, i)) {
      best = e;
      bestIndex = i;
    }
  }
  return best;
}

/** The status in force at `at` (see `eventInForceAt`), or null if the card had none yet. */
export function cardStatusAt(events: readonly CardStatusEvent[], at: Date): CardStatus | null {
  return eventInForceAt(events, at)?.status ?? null;
}

/** The latest event of the history, whatever its time: the card's current status. */
export function latestEvent<E extends CardStatusEvent>(events: readonly E[]): E | undefined {
  let best: E | undefined;
  let bestIndex = -1;
  for (let i = 0; i < events.length; i++) {
    if (best === undefined || later(best, bestIndex, events[i], i)) {
      best = events[i];
      bestIndex = i;
    }
  }
  return best;
}

/**
 * Which statuses may follow which. ISSUED is only ever the first event (made when the card is
 * created); CANCELLED is final. A lost card that is found is re-activated; a suspended one
 * (misuse) may also be reported lost.
 */
export const card_status_transitions: Readonly<Record<CardStatus, readonly CardStatus[]>> = {
  ISSUED: ['ACTIVE', 'LOST_REPORTED', 'SUSPENDED', 'CANCELLED'],
  ACTIVE: ['LOST_REPORTED', 'SUSPENDED', 'CANCELLED'],
  LOST_REPORTED: ['ACTIVE', 'CANCELLED'],
  SUSPENDED: ['ACTIVE', 'LOST_REPORTED', 'CANCELLED'],
  CANCELLED: [],
};

export type StatusChangeVerdict =
  | { kind: 'apply' }
  /** The same status at the same instant is already recorded: a replay, nothing to write. */
  | { kind: 'replay'; event: CardStatusEvent }
  | { kind: 'refuse'; code: string; message: string };

/**
 * May `proposed` be added to a card's history? It is judged against the status in force at its
 * own effective time (a back-dated loss report is judged against what the card was then), and
 * must not be effective before the card was issued. A CANCELLED event must be the latest, and
 * nothing may take effect after a cancellation.
 */
export function checkStatusChange(events: readonly CardStatusEvent[], proposed: { status: CardStatus; effectiveAt: Date }): StatusChangeVerdict {
  const t = proposed.effectiveAt.getTime();
  for (const e of events) {
    if (e.status === proposed.status && e.effectiveAt.getTime() === t) return { kind: 'replay', event: e };
  }
  if (proposed.status === 'ISSUED') {
    return { kind: 'refuse', code: 'CARD_STATUS_TRANSITION_INVALID', message: 'ISSUED is recorded when the card is created, not as a later event.' };
  }
  const inForce = eventInForceAt(events, proposed.effectiveAt);
  if (inForce === undefined) {
    return { kind: 'refuse', code: 'CARD_STATUS_BEFORE_ISSUE', message: 'A status cannot take effect before the card was issued.' };
  }
  const cancelled = events.find((e) => e.status === 'CANCELLED');
  if (cancelled !== undefined) {
    return { kind: 'refuse', code: 'CARD_CANCELLED', message: 'The card is cancelled; its status can no longer change.' };
  }
  if (proposed.status === 'CANCELLED') {
    const last = latestEvent(events);
    if (last !== undefined && last.effectiveAt.getTime() > t) {
      return { kind: 'refuse', code: 'CARD_STATUS_TRANSITION_INVALID', message: 'A cancellation cannot take effect before the card\'s latest status change.' };
    }
  }
  if (!card_status_transitions[inForce.status].includes(proposed.status)) {
    return {
      kind: 'refuse', code: 'CARD_STATUS_TRANSITION_INVALID',
      message: `A card that is ${inForce.status} at that time cannot become ${proposed.status}.`,
    };
  }
  return { kind: 'apply' };
}
