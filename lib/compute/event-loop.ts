/**
 * Long tensor loops run synchronously on the JS thread (tfjs-node ops and dataSync block it). Nothing else in
 * the process runs until the loop awaits a macrotask: a Temporal worker then sends no heartbeats, answers no
 * progress query and never hears of a cancellation. Loops call this between steps, with their abort signal;
 * it costs microseconds.
 */
export async function yieldToEventLoop(signal?: AbortSignal): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve));
  // What ran meanwhile may have been the cancellation: stop here rather than start the next step.
  signal?.throwIfAborted();
}

/** Runs `fn` over [0, total) in chunks of `size`, yielding to the event loop (and checking `signal`) between. */
export async function forEachChunk(
  total: number,
  size: number,
  fn: (start: number, count: number) => void,
  signal?: AbortSignal,
): Promise<void> {
  for (let start = 0; start < total; start += size) {
    fn(start, Math.min(size, total - start));
    await yieldToEventLoop(signal);
  }
}
