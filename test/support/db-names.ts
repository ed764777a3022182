export const template_db = 'onecard_test_template';

/** The server tests use: DATABASE_URL when set, else the machine's local Postgres. */
export function adminUrl(): string {
  return process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export function databaseUrlFor(name: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${name}`;
  return u.toString();
}
