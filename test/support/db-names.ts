/**
 * The migrated template each test file clones. Its name is per test run (the global setup sets
 * ONECARD_TEST_TEMPLATE before any worker starts), so two runs on one server never collide.
 */
export const template_db_default = 'onecard_test_template';
export const template_db_prefix = 'onecard_tpl_';

export function templateDb(): string {
  return process.env.ONECARD_TEST_TEMPLATE ?? template_db_default;
}

/** The server tests use: DATABASE_URL when set, else the machine's local Postgres. */
export function adminUrl(): string {
  return process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export function databaseUrlFor(name: string): string {
  const u = new URL(adminUrl());
  u.pathname = `/${name}`;
  return u.toString();
}
