// `lmdr --help` start-up: the compiled CLI (bin/lmdr.js -> dist/) must answer within 0.5 s.
// Baseline: a bare `node -e ""` start on the same machine in the same run, so the ratio shows
// what lmdr adds on top of Node itself. Each figure is the best of several runs.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bestOf } from '../timing.ts';
import type { Suite } from './types.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const CLI_STARTUP_LIMIT_S = 0.5;

function run(args: string[]): void {
  const r = spawnSync(process.execPath, args, { cwd: root, stdio: ['ignore', 'ignore', 'pipe'], encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited with ${r.status ?? r.signal}: ${r.stderr}`);
}

export const cliStartupSuite: Suite = {
  name: 'cli-startup',
  needs: 'cpu',
  describe: `lmdr --help start-up of the compiled CLI (limit ${CLI_STARTUP_LIMIT_S} s) vs a bare Node start`,
  async run(ctx) {
    if (!fs.existsSync(path.join(root, 'dist', 'cli', 'main.js'))) throw new Error('dist/ is not built: run "npm run build:js"');
    const repeats = ctx.quick ? 3 : 10;
    const lmdr = await bestOf(repeats, () => run([path.join(root, 'bin', 'lmdr.js'), '--help']), { warmup: true });
    const node = await bestOf(repeats, () => run(['-e', '']), { warmup: true });
    ctx.log(`lmdr --help ${(lmdr.seconds * 1000).toFixed(0)} ms, node -e "" ${(node.seconds * 1000).toFixed(0)} ms (best of ${repeats})`);
    const ok = lmdr.seconds < CLI_STARTUP_LIMIT_S;
    return {
      figures: [{
        name: `lmdr --help start-up, best of ${repeats}: ${(lmdr.seconds * 1000).toFixed(0)} ms`,
        value: 1 / lmdr.seconds, unit: 'starts/s',
        baseline: `bare node -e "" (${(node.seconds * 1000).toFixed(0)} ms)`, baselineValue: 1 / node.seconds,
        ratio: node.seconds / lmdr.seconds,
        check: `${ok ? 'under' : 'OVER'} the ${CLI_STARTUP_LIMIT_S * 1000} ms limit`,
      }],
      settings: { repeats, limitSeconds: CLI_STARTUP_LIMIT_S },
    };
  },
};
