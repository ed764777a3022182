/**
 * Once per test run: migrate a template database on the test server (DATABASE_URL, default the
 * local server at 127.0.0.1:5432), from which each test file clones its own database. The
 * template is named after this run's process, and templates of runs whose process is gone
 * (killed runs) are dropped.
 */
import pg from 'pg';
import { migrateUp } from '../../adapters/postgres/migrate.ts';
import { adminUrl, databaseUrlFor, template_db_prefix } from './db-names.ts';

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

async function dropDatabase(admin: pg.Client, name: string): Promise<void> {
  await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

export default async function setup(): Promise<() => Promise<void>> {
  const template = `${template_db_prefix}${process.pid}`;
  process.env.ONECARD_TEST_TEMPLATE = template;
  const admin = new pg.Client({ connectionString: adminUrl() });
  await admin.connect();
  try {
    const old = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${template_db_prefix}%`]);
    for (const { datname } of old.rows) {
      const pid = Number(datname.slice(template_db_prefix.length));
      if (datname === template || !alive(pid)) await dropDatabase(admin, datname);
    }
    await admin.query(`CREATE DATABASE ${template}`);
  } finally {
    await admin.end();
  }
  await migrateUp(databaseUrlFor(template));
  return async () => {
    const a = new pg.Client({ connectionString: adminUrl() });
    await a.connect();
    try {
      await dropDatabase(a, template);
    } finally {
      await a.end();
    }
  };
}
