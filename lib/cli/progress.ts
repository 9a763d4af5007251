// The one progress bar every command uses. It writes to stderr, only when stderr is a TTY or
// LMDR_PROGRESS=1 (LMDR_PROGRESS=0 silences it), at most every 100 ms on a TTY (one line
// redrawn in place) or every 2 s otherwise (one line per update, for logs).
// Shows count/total, percentage, rate, ETA and optional extra text (e.g. the loss).

export interface ProgressOptions {
  unit?: string; // e.g. "texts", "steps"
  stream?: NodeJS.WriteStream; // default process.stderr
  enabled?: boolean; // default: from the environment and the stream
  clock?: () => number; // milliseconds; default Date.now (tests pass a fake)
}

export class ProgressBar {
  private readonly label: string;
  private readonly total: number | null;
  private readonly unit: string;
  private readonly stream: NodeJS.WriteStream;
  private readonly enabled: boolean;
  private readonly tty: boolean;
  private readonly clock: () => number;
  private readonly start: number;
  private lastDraw = 0;
  private done = 0;
  private extra = '';
  private finished = false;

  constructor(label: string, total: number | null, opts: ProgressOptions = {}) {
    this.label = label;
    this.total = total;
    this.unit = opts.unit ?? '';
    this.stream = opts.stream ?? process.stderr;
    this.tty = Boolean(this.stream.isTTY);
    this.clock = opts.clock ?? Date.now;
    this.start = this.clock();
    const env = process.env.LMDR_PROGRESS;
    this.enabled = opts.enabled ?? (env === '1' ? true : env === '0' ? false : this.tty);
  }

  /** Record progress; redraws when the throttle interval has passed. */
  update(done: number, extra?: string): void {
    this.done = done;
    if (extra !== undefined) this.extra = extra;
    if (!this.enabled) return;
    if (this.total !== null && done >= this.total) return; // finish() draws the final state once
    const now = this.clock();
    if (now - this.lastDraw < (this.tty ? 100 : 2000)) return;
    this.lastDraw = now;
    this.draw();
  }

  /** Draw the final state and end the line (once: later calls do nothing). */
  finish(extra?: string): void {
    if (extra !== undefined) this.extra = extra;
    if (!this.enabled || this.finished) return;
    this.finished = true;
    this.draw();
    if (this.tty) this.stream.write('\n');
  }

  /** The current line's text (without terminal control codes). */
  render(): string {
    const seconds = (this.clock() - this.start) / 1000;
    const rate = seconds > 0 ? this.done / seconds : 0;
    const unit = this.unit ? ` ${this.unit}` : '';
    const parts = [this.label];
    if (this.total !== null && this.total > 0) {
      const frac = Math.min(1, this.done / this.total);
      const width = 20;
      const filled = Math.round(frac * width);
      parts.push(`[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`, `${this.done}/${this.total}${unit}`, `${(frac * 100).toFixed(0)}%`);
    } else {
      parts.push(`${this.done}${unit}`);
    }
    parts.push(`${formatRate(rate)}${unit}/s`);
    if (this.total !== null && rate > 0 && this.done < this.total) parts.push(`ETA ${formatDuration((this.total - this.done) / rate)}`);
    else parts.push(formatDuration(seconds));
    if (this.extra) parts.push(this.extra);
    return parts.join(' ');
  }

  private draw(): void {
    const line = this.render();
    this.stream.write(this.tty ? `\r${line}\x1b[K` : `${line}\n`);
  }
}

function formatRate(r: number): string {
  return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2);
}

export function formatDuration(seconds: number): string {
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${sec}` : `${m}:${sec}`;
}
