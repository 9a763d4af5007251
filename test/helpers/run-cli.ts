// Runs the lmdr CLI in-process (lib/cli/main.ts) and captures what it writes to stderr.
import { main } from '../../lib/cli/main.ts';

export async function runCli(args: string[]): Promise<{ code: number; stderr: string }> {
  const write = process.stderr.write;
  let stderr = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    stderr += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { code: await main(args), stderr };
  } finally {
    process.stderr.write = write;
  }
}
