/**
 * `npm run keys -- create --role R [--scope ID] --label TEXT` | `revoke --id key_...` | `list`.
 * Works directly on the database, so it is also how the first admin key can be made.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config.ts';
import { createLogger } from '../logger.ts';
import { resolveDatabase } from '../engine.ts';
import { migrateUp } from '../postgres/migrate.ts';
import { createPool } from '../postgres/db.ts';
import { createApiKey, listApiKeys, revokeApiKey } from '../auth/api-keys.ts';
import { isDomainError } from '../../engine/errors.ts';

const { positionals, values } = parseArgs({
  allowPositionals: true,
  options: { role: { type: 'string' }, scope: { type: 'string' }, label: { type: 'string' }, id: { type: 'string' } },
});
const config = loadConfig();
const log = createLogger('warn');
const { databaseUrl, embedded } = await resolveDatabase(config, log);
const db = createPool(databaseUrl, 2, 'onecard-cli');
let code = 0;
try {
  await migrateUp(databaseUrl);
  const actor = `cli:${process.env.USER ?? 'operator'}`;
  switch (positionals[0]) {
    case 'create': {
      const k = await createApiKey(db, values.role ?? '', values.scope ?? null, values.label ?? `${values.role} key`, actor);
      process.stdout.write(`key id: ${k.keyId}\ntoken (shown once, store it now): ${k.token}\n`);
      break;
    }
    case 'revoke':
      await revokeApiKey(db, values.id ?? '', actor);
      process.stdout.write(`revoked ${values.id}\n`);
      break;
    case 'list':
      for (const k of await listApiKeys(db)) {
        process.stdout.write(`${k.id}\t${k.role}\t${k.scope_id ?? '-'}\t${k.revoked_at ? 'REVOKED' : 'active'}\t${k.label}\n`);
      }
      break;
    default:
      process.stderr.write('usage: npm run keys -- create --role ROLE [--scope ID] --label TEXT | revoke --id KEY_ID | list\n');
      code = 2;
  }
} catch (e) {
  process.stderr.write(isDomainError(e) ? `${e.code}: ${e.message}\n` : `${(e as Error).message}\n`);
  code = 1;
} finally {
  await db.end();
  await embedded?.stop();
}
process.exit(code);
