/**
 * Schema migrations: plain SQL files in `migrations/`, applied in order by node-pg-migrate
 * (with its advisory lock, so two engine nodes starting together migrate once).
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runner } from 'node-pg-migrate';
import type { Queryable } from './db.ts';

export const migrations_dir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../migrations');
export const migrations_table = 'schema_migrations';

export async function migrateUp(databaseUrl: string, log: (msg: string) => void = () => undefined): Promise<string[]> {
  const applied = await runner({
    databaseUrl,
    dir: migrations_dir,
    direction: 'up',
    migrationsTable: migrations_table,
    checkOrder: true,
    singleTransaction: true,
    createSchema: false,
    advisoryLockMode: 'wait',
    log,
    verbose: false,
  });
  return applied.map((m) => m.name);
}

export function migrationFiles(): string[] {
  return fs.readdirSync(migrations_dir).filter((f) => f.endsWith('.sql')).sort();
}

/** Ready only when every migration file in this build has been applied. */
export async function migrationsPending(db: Queryable): Promise<number> {
  const files = migrationFiles().map((f) => f.replace(/\.sql$/, ''));
  const r = await db.query<{ name: string }>(`SELECT name FROM ${migrations_table}`).catch(() => ({ rows: [] as { name: string }[] }));
  const done = new Set(r.rows.map((x) => x.name));
  return files.filter((f) => !done.has(f)).length;
}
