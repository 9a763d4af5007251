import { runDemo } from './lib/demo/run-demo.ts';
const [gain, lr, temp, steps] = process.argv.slice(2).map(Number);
const r = await runDemo({ output: `/tmp/ship-exp-${gain}-${lr}-${temp}`, steps, lr, temperature: temp, device: 'cpu', dataset: { maxTestQueries: 300 }, demoModel: { initGain: gain } }, { evaluated: (s, m) => console.log(s, JSON.stringify(m)) });
console.log(gain, lr, temp, 'loss', r.firstLoss.toFixed(3), r.finalLoss.toFixed(3), 'sec', r.trainSeconds.toFixed(0));
