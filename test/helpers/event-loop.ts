// Proof that a native call runs off the main thread: the call must hand back a Promise at once,
// and the event loop must keep turning (setImmediate callbacks run) until it settles. A call that
// did its work synchronously would return a settled Promise with zero turns in between.
import { expect } from 'chai';

/** Starts `call`, counts event-loop turns until its Promise settles, returns the count. */
export async function loopTurnsDuring(call: () => unknown): Promise<number> {
  let turns = 0;
  let running = true;
  const spin = () => {
    if (!running) return;
    turns++;
    setImmediate(spin);
  };
  setImmediate(spin);
  const result = call();
  expect(result, 'a heavy native call must return a Promise').to.be.instanceOf(Promise);
  try {
    await result;
  } finally {
    running = false;
  }
  return turns;
}
