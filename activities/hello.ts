/** Activities of the hello pipeline: each reads its inputs by reference and stores its output as an artifact. */
import type { ArtifactRef, ArtifactStore } from '../lib/storage/artifact-store.js';
import { renderGreeting, summarizeText } from '../lib/hello.js';

export interface GreetingInput {
  runId: string;
  message: string;
  repeat: number;
  seed: number;
}

export function createHelloActivities(store: ArtifactStore) {
  return {
    async writeGreeting(input: GreetingInput): Promise<ArtifactRef> {
      const text = renderGreeting(input.message, input.repeat, input.seed);
      return store.put(
        `runs/${input.runId}/hello/greeting`,
        [{ path: 'greeting.txt', bytes: Buffer.from(text) }],
        { run: input.runId, stage: 'greeting', inputs: [] },
      );
    },

    async summarizeGreeting(input: { runId: string; greeting: ArtifactRef }): Promise<ArtifactRef> {
      const text = (await store.readBytes(input.greeting, 'greeting.txt')).toString('utf8');
      const summary = summarizeText(text);
      return store.put(
        `runs/${input.runId}/hello/summary`,
        [{ path: 'summary.json', bytes: Buffer.from(JSON.stringify(summary, null, 2)) }],
        { run: input.runId, stage: 'summary', inputs: [input.greeting] },
      );
    },
  };
}

export type HelloActivities = ReturnType<typeof createHelloActivities>;
