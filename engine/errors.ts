/**
 * The one place where refusals are made. Every error that reaches a caller carries a stable
 * machine `code`, an HTTP status and a human sentence; `details` holds structured context
 * (never personal data, keys or full card numbers).
 */
export class DomainError extends Error {
  readonly code: string;
  readonly status: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: string, status: number, message: string, details?: Record<string, unknown>) {
    super(message);
    this.name = 'DomainError';
    this.code = code;
    this.status = status;
    this.details = details;
  }
}

export const badRequest = (code: string, message: string, details?: Record<string, unknown>) =>
  new DomainError(code, 400, message, details);
export const unauthorized = (message = 'A valid credential is required.') =>
  new DomainError('UNAUTHENTICATED', 401, message);
export const forbidden = (code: string, message: string, details?: Record<string, unknown>) =>
  new DomainError(code, 403, message, details);
export const notFound = (code: string, message: string, details?: Record<string, unknown>) =>
  new DomainError(code, 404, message, details);
export const conflict = (code: string, message: string, details?: Record<string, unknown>) =>
  new DomainError(code, 409, message, details);
export const tooLarge = (code: string, message: string, details?: Record<string, unknown>) =>
  new DomainError(code, 413, message, details);
export const unprocessable = (code: string, message: string, details?: Record<string, unknown>) =>
  new DomainError(code, 422, message, details);

export function isDomainError(e: unknown): e is DomainError {
  return e instanceof DomainError;
}
