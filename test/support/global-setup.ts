/**
 * Once per test run: migrate a template database on the test server (DATABASE_URL, default the
 * local server at 127.0.0.1:5432), from which each test file clones its own database.
 */
import pg from 'pg';
import { migrateUp } from '../../adapters/postgres/migrate.ts';
import { adminUrl, databaseUrlFor, template_db } from './db-names.ts';

export default async function setup(): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    await admin.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1`, [template_db]);
    await admin.query(`DROP DATABASE IF EXISTS ${template_db}`);
    await admin.query(`CREATE DATABASE ${template_db}`);
  } finally {
    await admin.end();
  }
  await migrateUp(databaseUrlFor(template_db));
}
