/** Structured JSON logs (pino). Credentials and personal fields are redacted wherever they appear. */
import pino, { type Logger } from 'pino';

export const redact_paths = [
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', '*.token', '*.secret', '*.key', '*.keyHex',
  '*.card_no', '*.cardNo', '*.name', '*.national_id', '*.nationalId', '*.phone', '*.address',
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({ level, base: { service: 'onecard' }, redact: { paths: redact_paths, censor: '[redacted]' } }, destination);
}
