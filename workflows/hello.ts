import { proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { HelloActivities } from '../activities/hello.js';
import type { ArtifactRef } from '../lib/storage/artifact-store.js';
import { NON_RETRYABLE_ERRORS } from './retry.js';

const { writeGreeting, summarizeGreeting } = proxyActivities<HelloActivities>({
  startToCloseTimeout: '2 minutes',
  retry: { maximumAttempts: 5, initialInterval: '1 second', nonRetryableErrorTypes: NON_RETRYABLE_ERRORS },
});

export interface HelloInput {
  message: string;
  repeat: number;
  seed: number;
}

export interface HelloResult {
  greeting: ArtifactRef;
  summary: ArtifactRef;
}

/** Two activities; the second consumes the first's artifact by reference (payloads stay small). */
export async function helloWorkflow(input: HelloInput): Promise<HelloResult> {
  const runId = workflowInfo().workflowId;
  const greeting = await writeGreeting({ runId, ...input });
  const summary = await summarizeGreeting({ runId, greeting });
  return { greeting, summary };
}
