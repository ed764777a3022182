/** Benchmark 'ingest': being built. */
process.stderr.write('the ingest benchmark is not built yet\n');
process.exitCode = 2;
