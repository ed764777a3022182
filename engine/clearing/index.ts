export * from './netting.ts';
export * from './kinds.ts';
export { feeFen, validateFeeSchedule, type FeeSchedule } from './fees.ts';
export { addDays, businessDateFor, checkDate, cutoffInstant, cycleIdFor, parseCutoff, shanghaiDate } from './calendar.ts';
