// Benchmark workers: lmdr and each peer run in a child process of their own, started with the
// same malloc settings, and answer one JSON line per request (protocol: peer_protocol.py;
// lmdr-worker.ts and llama-cpp.ts speak it too). The driver sets each one up, compares their
// outputs, then times them in turns (interleaved) so machine noise hits every side alike.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const tsxCli = path.join(root, 'node_modules', 'tsx', 'dist', 'cli.mjs');

/** One timed run as a worker reports it. */
export interface RunReport {
  seconds: number;
  minflt: number; // minor page faults during the run (getrusage of the worker process)
}

/** How the processes of one comparison are started: the malloc setting both sides share. */
export type MallocMode = 'default' | 'hugepage';
export const MALLOC_MODES: MallocMode[] = ['default', 'hugepage'];
export const HUGEPAGE_TUNABLE = 'glibc.malloc.hugetlb=1';

/**
 * The environment of a worker: `threads` threads (LMDR_NUM_THREADS, OMP_NUM_THREADS,
 * OPENBLAS_NUM_THREADS), huge-page malloc or glibc's default, and for peers OPENBLAS_CORETYPE /
 * OPENBLAS_L2_SIZE removed so OpenBLAS picks its own best kernel for this CPU.
 */
export function workerEnv(mode: MallocMode, threads: number, peer: boolean): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, LMDR_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads), OPENBLAS_NUM_THREADS: String(threads) };
  delete env.GLIBC_TUNABLES;
  if (mode === 'hugepage') env.GLIBC_TUNABLES = HUGEPAGE_TUNABLE;
  if (peer) {
    delete env.OPENBLAS_CORETYPE;
    delete env.OPENBLAS_L2_SIZE;
  }
  return env;
}

export class Worker {
  private readonly child: ChildProcess;
  private readonly lines: readline.Interface;
  private readonly waiting: ((line: string | Error) => void)[] = [];
  private readonly queued: string[] = [];
  private stderrTail = '';
  private exited = false;

  constructor(readonly label: string, command: string, args: string[], env: NodeJS.ProcessEnv, onStderr?: (line: string) => void) {
    this.child = spawn(command, args, { cwd: root, env, stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stdin!.on('error', () => {}); // a worker that already ended: its exit reports it
    this.lines = readline.createInterface({ input: this.child.stdout! });
    this.lines.on('line', (line) => {
      if (!line.startsWith('{')) return; // stray prints of a peer library
      const w = this.waiting.shift();
      if (w) w(line);
      else this.queued.push(line);
    });
    readline.createInterface({ input: this.child.stderr! }).on('line', (line) => {
      this.stderrTail = (this.stderrTail + line + '\n').slice(-4000);
      onStderr?.(line);
    });
    const fail = (why: string) => {
      this.exited = true;
      for (const w of this.waiting.splice(0)) w(new Error(`${label} ${why}: ${this.lastError()}`));
    };
    this.child.on('exit', (code, signal) => fail(`exited with ${code ?? signal}`));
    this.child.on('error', (err) => fail(`could not start (${err.message})`));
  }

  /** A tsx worker script (bench/cpu/*.ts) under node. */
  static node(label: string, script: string, env: NodeJS.ProcessEnv, onStderr?: (line: string) => void): Worker {
    return new Worker(label, process.execPath, [tsxCli, path.join(root, script)], env, onStderr);
  }

  private lastError(): string {
    const lines = this.stderrTail.trim().split('\n').filter(Boolean);
    return lines.slice(-3).join(' | ') || 'no stderr';
  }

  /** Sends one request and waits for its JSON reply; an {error} reply throws. */
  async request<T = Record<string, unknown>>(msg: Record<string, unknown>): Promise<T> {
    if (this.exited) throw new Error(`${this.label} is not running: ${this.lastError()}`);
    const reply = new Promise<string | Error>((resolve) => {
      const q = this.queued.shift();
      if (q !== undefined) resolve(q);
      else this.waiting.push(resolve);
    });
    this.child.stdin!.write(JSON.stringify(msg) + '\n');
    const line = await reply;
    if (line instanceof Error) throw line;
    const out = JSON.parse(line) as T & { error?: string };
    if (out.error) throw new Error(`${this.label}: ${out.error}`);
    return out;
  }

  async close(): Promise<void> {
    if (this.exited) return;
    const done = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.stdin!.end(JSON.stringify({ cmd: 'exit' }) + '\n');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await done;
    clearTimeout(timer);
  }
}

export const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

export interface Timing {
  seconds: number; // median
  all: number[];
  minflt: number; // median minor page faults per run
}

/**
 * One untimed run of each worker, then `rounds` rounds in which every worker runs once; the
 * order alternates between rounds. Returns each worker's median seconds and page faults.
 */
export async function interleave(workers: Worker[], rounds: number, log: (m: string) => void): Promise<Map<Worker, Timing>> {
  const runs = new Map<Worker, RunReport[]>(workers.map((w) => [w, []]));
  for (const w of workers) await w.request({ cmd: 'run' });
  for (let r = 0; r < rounds; r++) {
    const order = r % 2 === 0 ? workers : [...workers].reverse();
    const parts: string[] = [];
    for (const w of order) {
      const rep = await w.request<RunReport>({ cmd: 'run' });
      runs.get(w)!.push(rep);
      parts.push(`${w.label} ${rep.seconds.toFixed(3)} s`);
    }
    log(`round ${r + 1}/${rounds}: ${parts.join(', ')}`);
  }
  return new Map(workers.map((w) => {
    const reps = runs.get(w)!;
    return [w, { seconds: median(reps.map((x) => x.seconds)), all: reps.map((x) => x.seconds), minflt: median(reps.map((x) => x.minflt)) }];
  }));
}

/** The Python interpreter to run a peer with: $PYTHON, else the first of python3 and /usr/bin/python3 that imports `module`. */
export function pythonWith(module: string): { python?: string; reason?: string } {
  const known = pythonCache.get(module);
  if (known) return known;
  const found = findPython(module);
  pythonCache.set(module, found);
  return found;
}
const pythonCache = new Map<string, { python?: string; reason?: string }>();

function findPython(module: string): { python?: string; reason?: string } {
  const candidates = process.env.PYTHON ? [process.env.PYTHON] : ['python3', '/usr/bin/python3'];
  for (const python of candidates) {
    const r = spawnSync(python, ['-c', `import ${module}`], { stdio: 'ignore', timeout: 120_000 });
    if (r.status === 0) return { python };
  }
  return { reason: `python module "${module}" does not import (tried ${candidates.join(', ')}${process.env.PYTHON ? ' from $PYTHON' : '; set $PYTHON'}; e.g. apt-get install python3-${module})` };
}

/** A Python peer script (bench/cpu/*.py). */
export function pythonWorker(label: string, python: string, script: string, env: NodeJS.ProcessEnv, onStderr?: (line: string) => void): Worker {
  return new Worker(label, python, [path.join(root, script)], { ...env, PYTHONUNBUFFERED: '1' }, onStderr);
}
