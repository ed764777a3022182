/** Structured JSON logs (pino). Credentials and personal fields are redacted wherever they appear. */
import pino, { type Logger } from 'pino';

export const redact_paths = [
  'req.headers.authorization', 'req.headers.cookie', 'headers.authorization', '*.token', '*.secret', '*.key', '*.keyHex',
  '*.card_no', '*.cardNo', '*.name', '*.national_id', '*.nationalId', '*.phone', '*.address',
];

// A card number is 16..19 digits; in a URL it is masked to its first 6 and last 4 digits.
const card_no_in_text = /(?<![0-9])([0-9]{6})[0-9]{6,9}([0-9]{4})(?![0-9])/g;

/** A URL fit for a log line: card numbers masked, the query string dropped (it may carry them). */
export function loggableUrl(url: string): string {
  return url.split('?')[0].replace(card_no_in_text, '$1******$2');
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    base: { service: 'onecard' },
    redact: { paths: redact_paths, censor: '[redacted]' },
    serializers: {
      req: (req: { method?: string; url?: string; id?: unknown }) => ({ id: req.id, method: req.method, url: typeof req.url === 'string' ? loggableUrl(req.url) : undefined }),
    },
  }, destination);
}
