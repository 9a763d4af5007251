#!/usr/bin/env node
// Entry point: runs the compiled CLI (dist/, built from lib/ by `npm run build:js`, which
// `npm install` in a clone and `npm pack` run through the prepare script).
let main;
try {
  ({ main } = await import('../dist/cli/main.js'));
} catch (err) {
  if (err?.code !== 'ERR_MODULE_NOT_FOUND' || !String(err.message).includes('dist/cli/main.js')) throw err;
  process.stderr.write('lmdr: dist/cli/main.js is missing: the TypeScript sources have not been compiled (run "npm run build:js" in the lmdr folder)\n');
  process.exit(1);
}
process.exitCode = await main(process.argv.slice(2));
