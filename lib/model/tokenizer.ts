// Text -> token ids for embedding, with the model's own special-token template.
// EOS pooling follows the decoder-retriever recipe: tokenize with the template, truncate to
// maxLength-1, append the EOS id. cls/mean: tokenize with the template, truncate to maxLength.
// Truncation keeps the template's special tokens (like transformers' truncation=True).
import fs from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { UserError } from '../errors.ts';
import type { PoolingMode } from '../native.ts';
import { jsonKeys, object, optional, parse, string, union, type Infer } from '../schema.ts';
import type { ModelInfo } from './config.ts';

// The keys of tokenizer_config.json lmdr reads; the rest (chat templates, added tokens, ...) pass
// through to @huggingface/tokenizers unread. eos_token is a string or an AddedToken object.
const tokenizerConfigSchema = object({
  eos_token: optional(union(string(), object({ content: string() }, { unknownKeys: 'keep' }), 'a string or an object {"content": "..."}'), { nullable: true }),
}, { unknownKeys: 'keep', expected: 'a JSON object' });
export type TokenizerConfigJson = Infer<typeof tokenizerConfigSchema>;

export class TextTokenizer {
  /**
   * The underlying @huggingface/tokenizers object (decode, vocab look-ups).
   * @internal left out of the published .d.ts: that package's own types do not resolve under
   * --module nodenext, so exposing them would break a strict type check of every app.
   */
  readonly hf: Tokenizer;
  /** EOS id appended for eos pooling; null when neither tokenizer_config.json nor config.json names one. */
  readonly eosId: number | null;
  readonly file: string;

  /** @internal (TextTokenizer.load makes one) */
  constructor(hf: Tokenizer, eosId: number | null, file: string) {
    this.hf = hf;
    this.eosId = eosId;
    this.file = file;
  }

  /** Load <modelDir>/tokenizer.json (+ tokenizer_config.json); null when the dir has no tokenizer. */
  static load(modelDir: string, info: ModelInfo): TextTokenizer | null {
    const file = path.join(modelDir, 'tokenizer.json');
    if (!fs.existsSync(file)) return null;
    const tokenizerJson = readJson(file);
    const configFile = path.join(modelDir, 'tokenizer_config.json');
    const tokenizerConfig = fs.existsSync(configFile) ? readJson(configFile) : {};
    let hf: Tokenizer;
    try {
      hf = new Tokenizer(tokenizerJson, tokenizerConfig);
    } catch (err) {
      throw new UserError(`${file}: cannot load tokenizer (${(err as Error).message})`);
    }
    let eosId = info.eosTokenId;
    const eos = parse(tokenizerConfigSchema, tokenizerConfig, jsonKeys(configFile, 'tokenizer_config.json')).eos_token;
    const eosText = typeof eos === 'string' ? eos : eos?.content;
    if (eosText !== undefined) {
      const id = hf.token_to_id(eosText);
      if (id === undefined) throw new UserError(`${configFile}: eos_token ${JSON.stringify(eosText)} is not in the vocabulary of ${file}`);
      eosId = id;
    }
    return new TextTokenizer(hf, eosId, file);
  }

  /**
   * Token ids for one text under the given pooling; never longer than maxLength. `untruncated`,
   * when given, receives the length the sequence would have without truncation.
   */
  encode(text: string, pooling: PoolingMode, maxLength: number, untruncated?: { length: number }): number[] {
    if (pooling !== 'eos') return this.encodeTruncated(text, maxLength, untruncated);
    if (this.eosId === null) {
      throw new UserError(`${this.file}: eos pooling needs an EOS token, but neither tokenizer_config.json "eos_token" nor config.json "eos_token_id" names one`);
    }
    const ids = [...this.encodeTruncated(text, maxLength - 1, untruncated), this.eosId];
    if (untruncated) untruncated.length += 1;
    return ids;
  }

  /** Template-wrapped ids with the content truncated so the whole fits in maxLength. */
  encodeTruncated(text: string, maxLength: number, untruncated?: { length: number }): number[] {
    const full = this.hf.encode(text, { add_special_tokens: true }).ids;
    if (untruncated) untruncated.length = full.length;
    if (full.length <= maxLength) return full;
    const content = this.hf.encode(text, { add_special_tokens: false }).ids;
    const start = findRun(full, content);
    if (start < 0) return full.slice(0, maxLength); // template does not keep the text contiguous
    const prefix = full.slice(0, start);
    const suffix = full.slice(start + content.length);
    const keep = Math.max(0, maxLength - prefix.length - suffix.length);
    return [...prefix, ...content.slice(0, keep), ...suffix].slice(0, maxLength);
  }
}

function findRun(haystack: number[], needle: number[]): number {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

function readJson(file: string): Record<string, unknown> {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    throw new UserError(`${file}: cannot read JSON (${(err as Error).message})`);
  }
}
