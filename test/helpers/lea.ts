/** Runs the real `lea` command in a child process, as a user would. */
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../..', import.meta.url));

export interface LeaResult {
  code: number;
  /** The signal that killed the command (a crash or the timeout), or null. */
  signal: string | null;
  stdout: string;
  stderr: string;
}

export function runLea(args: string[], env: NodeJS.ProcessEnv = process.env, timeoutMs = 120_000): LeaResult {
  const r = spawnSync(process.execPath, ['bin/lea.js', ...args], {
    cwd: repoRoot,
    env,
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { code: r.status ?? -1, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

/** runLea without blocking the event loop: for commands that talk to a server this test process runs. */
export function runLeaAsync(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<LeaResult> {
  const child = spawn(process.execPath, ['bin/lea.js', ...args], { cwd: repoRoot, env });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code: code ?? -1, signal, stdout, stderr }));
  });
}

/**
 * A failed command explained for an assertion message: how it ended and its last error line first (CI logs
 * may keep only the head of a long message), then the tail of its stderr.
 */
export function explain(r: LeaResult, tailChars = 3000): string {
  const lastError = r.stderr
    .split('\n')
    .filter((l) => l.startsWith('lea: ') || /Error|error:/.test(l))
    .at(-1);
  const ended = r.signal ? `killed by ${r.signal}` : `exit ${r.code}`;
  return `${ended}; last error: ${lastError ?? '(none printed)'}\n--- stderr tail ---\n${r.stderr.slice(-tailChars)}`;
}

/** The environment of the embedded servers that scripts/test.sh started (same LEA_HOME and ports), with the
 * variables that would point commands elsewhere removed. */
export function embeddedEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['TEMPORAL_ADDRESS', 'AWS_ENDPOINT_URL_S3', 'LEA_BUCKET']) delete env[k];
  return env;
}
