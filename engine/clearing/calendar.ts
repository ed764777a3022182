/**
 * The clearing calendar's pure rules: which business date an instant belongs to, and the id of
 * a cycle. Business dates are Asia/Shanghai calendar dates (UTC+8 all year: China has no daylight
 * saving), and a cycle closes at the cutoff, so an instant at or after the cutoff belongs to the
 * next business date.
 */
import { badRequest } from '../errors.ts';

export const shanghai_offset_ms = 8 * 3_600_000;
export const cutoff_default = '23:00';
const cutoff_pattern = /^([01][0-9]|2[0-3]):([0-5][0-9])$/;
const date_pattern = /^(\d{4})-(\d{2})-(\d{2})$/;

/** Minutes after local midnight of a cutoff written `HH:MM`. */
export function parseCutoff(text: string): number {
  const m = cutoff_pattern.exec(text);
  if (!m) throw badRequest('CUTOFF_INVALID', 'A cutoff is a local time HH:MM (Asia/Shanghai).');
  return Number(m[1]) * 60 + Number(m[2]);
}

/** The Asia/Shanghai calendar date of an instant, YYYY-MM-DD. */
export function shanghaiDate(at: Date): string {
  return new Date(at.getTime() + shanghai_offset_ms).toISOString().slice(0, 10);
}

/** The business date an instant belongs to, given the cutoff in minutes after local midnight. */
export function businessDateFor(at: Date, cutoffMinutes: number): string {
  const local = new Date(at.getTime() + shanghai_offset_ms);
  const minutes = local.getUTCHours() * 60 + local.getUTCMinutes();
  return minutes >= cutoffMinutes ? addDays(local.toISOString().slice(0, 10), 1) : local.toISOString().slice(0, 10);
}

/** The instant a business date's cycle is due to close. */
export function cutoffInstant(businessDate: string, cutoffMinutes: number): Date {
  const ms = Date.parse(`${checkDate(businessDate)}T00:00:00Z`) - shanghai_offset_ms + cutoffMinutes * 60_000;
  // A cutoff before midnight means the business date D closes at D's cutoff.
  return new Date(ms);
}

export function addDays(date: string, days: number): string {
  return new Date(Date.parse(`${checkDate(date)}T00:00:00Z`) + days * 86_400_000).toISOString().slice(0, 10);
}

export function cycleIdFor(businessDate: string): string {
  return `CYC${checkDate(businessDate).replaceAll('-', '')}`;
}

/** A real calendar date YYYY-MM-DD (not 2026-02-30), or a 400. */
export function checkDate(date: string): string {
  const m = date_pattern.exec(date);
  const ms = m === null ? Number.NaN : Date.parse(`${date}T00:00:00Z`);
  const ok = !Number.isNaN(ms) && new Date(ms).toISOString().slice(0, 10) === date;
  if (!ok) throw badRequest('BUSINESS_DATE_INVALID', 'A business date is a calendar date YYYY-MM-DD.');
  return date;
}
