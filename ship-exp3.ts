import { runDemo } from './lib/demo/run-demo.ts';
const r = await runDemo({ output: `/tmp/ship-exp-overfit`, steps: 60, lr: 3e-3, temperature: 0.05, evalSteps: 60, device: 'cpu', passageMaxLen: 64, dataset: { maxTestQueries: 20, maxTrainQueries: 32 } }, { step: (s) => { if (s.step % 5 === 0) console.log(s.step, s.loss.toFixed(3), s.grad_norm.toFixed(3), s.seconds.toFixed(2)); } });
console.log('loss', r.firstLoss.toFixed(3), r.finalLoss.toFixed(3));
