/** `npm run bench -- <name> [options]`: runs one benchmark. */
const benches: Record<string, () => Promise<unknown>> = {
  ledger: () => import('./ledger.ts'),
  ingest: () => import('./ingest.ts'),
  qr: () => import('./qr.ts'),
  clearing: () => import('./clearing.ts'),
  recon: () => import('./recon.ts'),
};
const name = process.argv[2];
if (!name || !(name in benches)) {
  process.stderr.write(`usage: npm run bench -- <${Object.keys(benches).join('|')}> [options]\n`);
  process.exit(2);
}
await benches[name]();
