// One declaration per options shape or external JSON record: the TypeScript type is derived from
// it (Infer<typeof schema>) and the same object checks values at run time, so the two cannot drift.
// A failed check is one UserError that names where (a function, FILE:LINE), the key (in the
// caller's names: camelCase for the API, --flags for the CLI, JSON keys for files), what was
// expected and what was given. Unknown keys of a strict object are errors suggesting the nearest key.
import { UserError } from './errors.ts';

/** How a failure is worded: `where` prefixes the message, `label` turns a key path into a name. */
export interface CheckContext {
  where?: string; // "engine.encode", "train.jsonl:3", "config.json"
  label?: (path: string) => string; // default: the path itself ("maxLength", "pos[2]")
}

export interface Schema<T> {
  readonly expected: string; // "an integer >= 1", "a string", ...
  readonly optional: boolean;
  /** The checked value; a failure throws through fail(). */
  check(value: unknown, path: string, ctx: CheckContext): T;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;
type Shape = Record<string, Schema<unknown>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};
type OptionalKeys<S extends Shape> = { [K in keyof S]: S[K]['optional'] extends true ? K : never }[keyof S];
export type ObjectOf<S extends Shape> = Simplify<
  { [K in Exclude<keyof S, OptionalKeys<S>>]: Infer<S[K]> } & { [K in OptionalKeys<S>]?: Infer<S[K]> }
>;

/** A short, exact description of a given value for messages: the string "8", the number 7, an array, null. */
export function describeValue(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 60 ? v.slice(0, 57) + '...' : v)}`;
  if (typeof v === 'number') return `${v}`;
  if (typeof v === 'boolean' || typeof v === 'bigint') return `${typeof v} ${String(v)}`;
  if (typeof v === 'function') return 'a function';
  if (Array.isArray(v)) return `an array (${v.length} item${v.length === 1 ? '' : 's'})`;
  if (ArrayBuffer.isView(v)) return `a ${v.constructor.name}`;
  if (typeof v === 'object') return v.constructor && v.constructor !== Object ? `a ${v.constructor.name}` : 'an object';
  return typeof v;
}

/** How keys of a JSON file or line are named: `"key"`, `"pos[2]"`; the whole value is `whole`. */
export function jsonKeys(where: string, whole = 'the value'): CheckContext {
  return { where, label: (p) => (p === '' ? whole : `"${p}"`) };
}

export function fail(path: string, ctx: CheckContext, what: string): never {
  const name = (ctx.label ?? ((p: string) => (p === '' ? 'options' : p)))(path);
  throw new UserError(`${ctx.where ? `${ctx.where}: ` : ''}${name} ${what}`);
}

/** A required key that is absent: "missing "query" (a string)". */
function missing(path: string, ctx: CheckContext, expected: string): never {
  const name = (ctx.label ?? ((p: string) => p))(path);
  throw new UserError(`${ctx.where ? `${ctx.where}: ` : ''}missing ${name} (${expected})`);
}

function schema<T>(expected: string, check: (v: unknown, path: string, ctx: CheckContext) => T): Schema<T> {
  return {
    expected, optional: false,
    check(v, path, ctx) {
      return check(v, path, ctx);
    },
  };
}

/** A check that a value fits `expected`; `test` says whether it does. */
function simple<T>(expected: string, test: (v: unknown) => boolean): Schema<T> {
  return schema<T>(expected, (v, path, ctx) => {
    if (v === undefined && path !== '') missing(path, ctx, expected);
    if (!test(v)) fail(path, ctx, `must be ${expected}, got ${describeValue(v)}`);
    return v as T;
  });
}

export function string(opts: { nonEmpty?: boolean } = {}): Schema<string> {
  return simple(opts.nonEmpty ? 'a non-empty string' : 'a string', (v) => typeof v === 'string' && (!opts.nonEmpty || v !== ''));
}

export function boolean(): Schema<boolean> {
  return simple('true or false', (v) => typeof v === 'boolean');
}

export interface NumberRule {
  int?: boolean;
  min?: number; // >= min
  max?: number; // <= max
  above?: number; // > above
  below?: number; // < below
  /** how the rule reads in messages when the default wording is not the clearest ("a positive integer") */
  expected?: string;
}

export function number(rule: NumberRule = {}): Schema<number> {
  const parts: string[] = [];
  if (rule.min !== undefined && rule.below !== undefined) parts.push(`in [${rule.min}, ${rule.below})`);
  else {
    if (rule.min !== undefined) parts.push(`>= ${rule.min}`);
    if (rule.above !== undefined) parts.push(`> ${rule.above}`);
    if (rule.below !== undefined) parts.push(`< ${rule.below}`);
  }
  if (rule.max !== undefined) parts.push(`<= ${rule.max}`);
  const expected = rule.expected ?? `${rule.int ? 'an integer' : 'a number'}${parts.length ? ' ' + parts.join(' and ') : ''}`;
  return simple(expected, (v) => typeof v === 'number' && Number.isFinite(v) && (!rule.int || Number.isSafeInteger(v)) &&
    (rule.min === undefined || v >= rule.min) && (rule.max === undefined || v <= rule.max) &&
    (rule.above === undefined || v > rule.above) && (rule.below === undefined || v < rule.below));
}

export function oneOf<const C extends readonly (string | number | boolean | null)[]>(choices: C): Schema<C[number]> {
  const words = choices.map((c) => (typeof c === 'string' ? c : JSON.stringify(c)));
  const expected = words.length === 1 ? words[0] : `${words.slice(0, -1).join(', ')} or ${words[words.length - 1]}`;
  return schema(expected, (v, path, ctx) => {
    if (v === undefined && path !== '') missing(path, ctx, expected);
    if (!(choices as readonly unknown[]).includes(v)) {
      const hint = typeof v === 'string' ? nearestHint(v, choices.filter((c): c is string => typeof c === 'string')) : '';
      fail(path, ctx, `must be ${expected}, got ${describeValue(v)}${hint}`);
    }
    return v as C[number];
  });
}

/** Any value at all (a field whose content is opaque, e.g. a cache key). */
export function unknownValue(): Schema<unknown> {
  return simple('any value', () => true);
}

/** Any function; T is the signature the type should carry. */
export function func<T extends (...args: never[]) => unknown>(): Schema<T> {
  return simple('a function', (v) => typeof v === 'function');
}

/** An instance of a class (Float32Array, ...). */
export function instance<T>(ctor: abstract new (...args: never[]) => T, name = ctor.name): Schema<T> {
  return simple(`a ${name}`, (v) => v instanceof ctor);
}

export function array<T>(item: Schema<T>, opts: { nonEmpty?: boolean } = {}): Schema<T[]> {
  const expected = `${opts.nonEmpty ? 'a non-empty' : 'an'} array of ${plural(item.expected)}`;
  return schema(expected, (v, path, ctx) => {
    if (v === undefined && path !== '') missing(path, ctx, expected);
    if (!Array.isArray(v)) fail(path, ctx, `must be ${expected}, got ${describeValue(v)}`);
    if (opts.nonEmpty && v.length === 0) fail(path, ctx, `must be ${expected}, got an empty array`);
    return v.map((x, i) => item.check(x, `${path}[${i}]`, ctx));
  });
}

/** A map with string keys and checked values. */
export function record<T>(value: Schema<T>): Schema<Record<string, T>> {
  const expected = `an object of ${plural(value.expected)}`;
  return schema(expected, (v, path, ctx) => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(path, ctx, `must be ${expected}, got ${describeValue(v)}`);
    const out: Record<string, T> = {};
    for (const [k, x] of Object.entries(v)) out[k] = value.check(x, join(path, k), ctx);
    return out;
  });
}

/** The first alternative that accepts the value. */
export function union<A, B>(a: Schema<A>, b: Schema<B>, expected = `${a.expected} or ${b.expected}`): Schema<A | B> {
  return schema(expected, (v, path, ctx) => {
    for (const s of [a, b] as Schema<A | B>[]) {
      try {
        return s.check(v, path, ctx);
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
      }
    }
    return fail(path, ctx, `must be ${expected}, got ${describeValue(v)}`);
  });
}

/** null itself, for keys where null means something of its own ("sliding_window": null = off). */
export function nullValue(): Schema<null> {
  return simple('null', (v) => v === null);
}

/** undefined is accepted (the key may be left out); null is not, unless `nullable` (then it reads as left out). */
export function optional<T>(inner: Schema<T>, opts: { nullable?: boolean } = {}): Schema<T | undefined> & { optional: true } {
  return {
    expected: inner.expected, optional: true,
    check(v, path, ctx) {
      if (v === undefined || (opts.nullable && v === null)) return undefined;
      return inner.check(v, path, ctx);
    },
  };
}

/** A further check on a value the inner schema accepted; `why` is the message when it fails. */
export function refine<T>(inner: Schema<T>, test: (v: T) => boolean, why: string): Schema<T> {
  return {
    expected: inner.expected, optional: inner.optional,
    check(v, path, ctx) {
      const out = inner.check(v, path, ctx);
      if (out !== undefined && !test(out)) fail(path, ctx, why);
      return out;
    },
  };
}

export interface ObjectSchema<S extends Shape> extends Schema<ObjectOf<S>> {
  readonly shape: S;
  readonly keys: string[];
}

/**
 * A plain object with the given keys. `unknownKeys: 'error'` (the default) refuses any other key
 * with the nearest known one as a hint; 'keep' lets them through unchecked (JSON files that
 * carry fields lmdr does not read).
 */
export function object<S extends Shape>(shape: S, opts: { unknownKeys?: 'error' | 'keep'; expected?: string } = {}): ObjectSchema<S> {
  const keys = Object.keys(shape);
  const expected = opts.expected ?? 'an object';
  return {
    expected, optional: false, shape, keys,
    check(v, path, ctx) {
      if (v === undefined && path !== '') missing(path, ctx, expected);
      if (typeof v !== 'object' || v === null || Array.isArray(v) || ArrayBuffer.isView(v)) fail(path, ctx, `must be ${expected}, got ${describeValue(v)}`);
      const src = v as Record<string, unknown>;
      if ((opts.unknownKeys ?? 'error') === 'error') {
        for (const k of Object.keys(src)) {
          if (!(k in shape)) {
            const label = ctx.label ?? ((p: string) => p);
            const known = keys.map((key) => label(join(path, key)));
            const hint = nearest(label(join(path, k)), known);
            throw new UserError(`${ctx.where ? `${ctx.where}: ` : ''}unknown ${path === '' ? 'option' : `key in ${label(path)}:`} ` +
              `"${label(join(path, k))}"${hint ? ` (did you mean "${hint}"?)` : ` (known: ${known.join(', ')})`}`);
          }
        }
      }
      const out: Record<string, unknown> = {};
      for (const k of keys) {
        const value = shape[k].check(src[k], join(path, k), ctx);
        if (value !== undefined) out[k] = value;
      }
      return out as ObjectOf<S>;
    },
  };
}

/** Check `value` against `s` with messages prefixed by `where` and keys named by `label`. */
export function parse<T>(s: Schema<T>, value: unknown, ctx: CheckContext = {}): T {
  return s.check(value, '', ctx);
}

function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

function plural(expected: string): string {
  return expected.replace(/^an? /, '').replace(/\b(string|integer|number|function|object|array)\b/, '$1s');
}

/** Levenshtein distance (insert, delete, substitute, and swap of two neighbours). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/**
 * The candidate nearest to `word`, when it is near enough to be a likely typo: case, "-" and
 * "_" are ignored (max_length -> maxLength), and at most a third of the letters may differ; else
 * a candidate that `word` starts with or that starts with `word`.
 */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replace(/[-_\s]/g, '');
  const w = norm(word);
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const dist = editDistance(w, norm(c));
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  if (best !== undefined && bestDistance <= Math.max(1, Math.floor(w.length / 3))) return best;
  // a longer or shorter spelling of a name ("--lora-rank" for "--lora-r")
  return candidates.find((c) => norm(c).length >= 3 && w.length >= 3 && (w.startsWith(norm(c)) || norm(c).startsWith(w)));
}

function nearestHint(word: string, candidates: readonly string[]): string {
  const n = nearest(word, candidates);
  return n ? ` (did you mean "${n}"?)` : '';
}
