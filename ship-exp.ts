import { runDemo } from './lib/demo/run-demo.ts';
const [spp, plen, steps, lr, temp, batch, group] = process.argv.slice(2).map(Number);
const t = Date.now();
const r = await runDemo({ output: `/tmp/ship-exp-${process.argv.slice(2).join('-')}`, steps, lr, temperature: temp, batchSize: batch, groupSize: group, passageMaxLen: plen, evalSteps: Math.round(steps / 4), device: 'cpu', dataset: { maxTestQueries: 300, sentencesPerPassage: spp } }, { evaluated: (s, m) => console.log(s, Object.values(m).map((x) => x.toFixed(4)).join(' ')) });
console.log(process.argv.slice(2).join(' '), 'loss', r.firstLoss.toFixed(3), r.finalLoss.toFixed(3), 'train sec', r.trainSeconds.toFixed(0), 'total', ((Date.now() - t) / 1000).toFixed(0));
