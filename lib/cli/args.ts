// Flag parsing shared by the commands: strict node:util parseArgs (unknown flags and positionals
// are errors), every error one line that points at the command's --help, and the value checks
// the commands have in common.
import { parseArgs } from 'node:util';
import type { Truncation } from '../engine.ts';
import { UserError } from '../errors.ts';
import { nearest } from '../schema.ts';

export type FlagTypes = Record<string, 'string' | 'boolean'>;
export type FlagValues<T extends FlagTypes> = { [K in keyof T]?: T[K] extends 'boolean' ? boolean : string } & { help?: boolean };

/** Parses argv against `flags` (plus --help/-h); a bad flag is a UserError naming it. */
export function parseFlags<T extends FlagTypes>(command: string, argv: string[], flags: T): FlagValues<T> {
  const options: Record<string, { type: 'string' | 'boolean'; short?: string }> = { help: { type: 'boolean', short: 'h' } };
  for (const [name, type] of Object.entries(flags)) options[name] = { type };
  try {
    return parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as FlagValues<T>;
  } catch (err) {
    const first = (err as Error).message.split('\n')[0];
    // parseArgs takes "-0.5" for a flag: say how to pass a negative value.
    let hint = /ambiguous/.test(first) ? 'a value starting with "-" needs the form --flag=VALUE' : `see lmdr ${command} --help`;
    const unknown = /^Unknown option '(-[^'=]+)/.exec(first)?.[1];
    const near = unknown && nearest(unknown, ['--help', ...Object.keys(flags).map((f) => `--${f}`)]);
    if (near) hint = `did you mean ${near}? see lmdr ${command} --help`;
    throw new UserError(`${first} (${hint})`);
  }
}

/** The value of a required flag; `what` names its argument in the message ("DIR"). */
export function requireFlag(command: string, value: string | undefined, flag: string, what: string): string {
  if (value === undefined || value === '') throw new UserError(`--${flag} ${what} is required (see lmdr ${command} --help)`);
  return value;
}

/** A positive integer flag; without a value, `fallback` (or an error when there is none). */
export function positiveInt(value: string | undefined, flag: string, fallback?: number): number {
  if (value === undefined) {
    if (fallback === undefined) throw new UserError(`--${flag} is required`);
    return fallback;
  }
  const n = Number(value);
  if (!/^\s*\d+\s*$/.test(value) || !Number.isSafeInteger(n) || n < 1) throw new UserError(`--${flag} expects a positive integer, got "${value}"`);
  return n;
}

/** A flag restricted to a few words; undefined stays undefined (the default applies later). */
export function oneOf<C extends string>(value: string | undefined, flag: string, choices: readonly C[]): C | undefined {
  if (value === undefined) return undefined;
  if (!(choices as readonly string[]).includes(value)) {
    throw new UserError(`--${flag} must be ${choices.slice(0, -1).join(', ')} or ${choices[choices.length - 1]}, got "${value}"`);
  }
  return value as C;
}

/** The one line a command prints when inputs were cut to a max length. */
export function truncationNote(t: Truncation, what: string, flag: string, total?: number): string {
  return `${t.inputs}${total !== undefined ? ` of ${total}` : ''} ${what} were longer than ${flag} ${t.maxLength} tokens and were truncated ` +
    `(longest: ${t.longest} tokens); raise ${flag} to keep more`;
}
