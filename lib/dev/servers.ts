/**
 * The embedded default servers: the Temporal CLI dev server (SQLite in $LEA_HOME/temporal.db) and SeaweedFS
 * `weed mini` (data in $LEA_HOME/s3), both from the project venv (.tools/venv) or PATH.
 *
 * up is idempotent (a server that already answers is left alone), down stops only what up started (pid
 * files under $LEA_HOME/run), and neither touches servers the environment points elsewhere.
 */
import { spawn } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  openSync,
  closeSync,
  readFileSync,
  writeFileSync,
  rmSync,
  chmodSync,
} from 'node:fs';
import { delimiter, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { projectRoot, type InfraSettings } from '../config/infra.js';
import { BadInputError, ServerUnreachableError, errorMessage } from '../errors.js';

export type ServerName = 'temporal' | 's3';

/** Health checks, injected so this module stays free of the Temporal and S3 client code. */
export type Probes = Record<ServerName, () => Promise<void>>;

export interface ServerState {
  name: ServerName;
  address: string;
  embedded: boolean;
  answering: boolean;
  /** pid of the process `lea dev up` started, when it is still alive */
  pid?: number;
  detail?: string;
}

/** Search attributes the pipeline sets on runs, registered when the dev server starts. */
export const SEARCH_ATTRIBUTES = ['LeaConfig', 'LeaDataset', 'LeaSubject', 'LeaCodeVersion', 'LeaVerdict'];

interface LaunchSpec {
  bin: string;
  args: string[];
}

function findBinary(name: string): string {
  const local = join(projectRoot, '.tools', 'venv', 'bin', name);
  if (existsSync(local)) return local;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  throw new BadInputError(
    `the '${name}' binary was not found in .tools/venv/bin or on PATH: run 'npm run setup'`,
  );
}

function launchSpec(name: ServerName, s: InfraSettings): LaunchSpec {
  if (name === 'temporal') {
    const port = Number(s.temporal.address.split(':').pop());
    return {
      bin: findBinary('temporal'),
      args: [
        'server',
        'start-dev',
        '--db-filename',
        join(s.home, 'temporal.db'),
        '--ip',
        '127.0.0.1',
        '--port',
        String(port),
        '--ui-port',
        String(s.temporal.uiPort),
        '--log-level',
        'warn',
        ...SEARCH_ATTRIBUTES.flatMap((a) => ['--search-attribute', `${a}=Keyword`]),
      ],
    };
  }
  const p = s.s3.port;
  const creds = s.s3.credentials;
  if (!creds)
    throw new BadInputError('the embedded S3 server needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY');
  const configFile = join(s.home, 's3-identities.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      identities: [
        {
          name: 'lea',
          credentials: [{ accessKey: creds.accessKeyId, secretKey: creds.secretAccessKey }],
          actions: ['Admin', 'Read', 'Write', 'List', 'Tagging'],
        },
      ],
    }),
    { mode: 0o600 },
  );
  chmodSync(configFile, 0o600);
  // Every listener gets an explicit port next to the S3 one (gRPC at +10000, SeaweedFS's own convention),
  // so two instances (a developer's and CI's) never collide on SeaweedFS's fixed defaults.
  const ports: [string, number][] = [
    ['s3', p],
    ['master', p + 1],
    ['volume', p + 2],
    ['filer', p + 3],
    ['admin', p + 4],
  ];
  return {
    bin: findBinary('weed'),
    args: [
      'mini',
      `-dir=${join(s.home, 's3')}`,
      '-ip=127.0.0.1',
      '-ip.bind=127.0.0.1',
      ...ports.flatMap(([k, v]) => [`-${k}.port=${v}`, `-${k}.port.grpc=${v + 10000}`]),
      `-s3.port.iceberg=${p + 5}`,
      `-s3.port.lance=${p + 6}`,
      `-s3.config=${configFile}`,
      '-s3.iam=false',
      '-webdav=false',
      '-admin.ui=false',
      '-master.telemetry=false',
      `-bucket=${s.s3.bucket}`,
    ],
  };
}

function address(name: ServerName, s: InfraSettings): string {
  return name === 'temporal' ? s.temporal.address : (s.s3.endpoint ?? 'AWS S3');
}

function embedded(name: ServerName, s: InfraSettings): boolean {
  return name === 'temporal' ? s.temporal.embedded : s.s3.embedded;
}

const runDir = (s: InfraSettings) => join(s.home, 'run');
const pidFile = (s: InfraSettings, name: ServerName) => join(runDir(s), `${name}.pid`);
export const logFile = (s: InfraSettings, name: ServerName) => join(s.home, 'logs', `${name}.log`);

/** The pid recorded by `up`, if that process is still the server we started. */
function ownedPid(s: InfraSettings, name: ServerName): number | undefined {
  const file = pidFile(s, name);
  if (!existsSync(file)) return undefined;
  const pid = Number(readFileSync(file, 'utf8').trim());
  const expected = name === 'temporal' ? 'temporal' : 'weed';
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    if (cmdline.includes(expected)) return pid;
  } catch {
    // no such process
  }
  rmSync(file, { force: true }); // stale: the process is gone or the pid was reused
  return undefined;
}

async function answers(probe: () => Promise<void>): Promise<{ ok: boolean; detail?: string }> {
  try {
    await probe();
    return { ok: true };
  } catch (err) {
    return { ok: false, detail: errorMessage(err) };
  }
}

export async function status(s: InfraSettings, probes: Probes): Promise<ServerState[]> {
  const names: ServerName[] = ['temporal', 's3'];
  return Promise.all(
    names.map(async (name) => {
      const r = await answers(probes[name]);
      const pid = ownedPid(s, name);
      return {
        name,
        address: address(name, s),
        embedded: embedded(name, s),
        answering: r.ok,
        ...(pid ? { pid } : {}),
        ...(r.detail ? { detail: r.detail } : {}),
      };
    }),
  );
}

export interface UpResult {
  name: ServerName;
  address: string;
  action: 'started' | 'already running' | 'external';
}

/** Starts each embedded server that does not answer yet and waits (bounded) until it is healthy. */
export async function up(s: InfraSettings, probes: Probes, log: (line: string) => void): Promise<UpResult[]> {
  const results: UpResult[] = [];
  for (const name of ['temporal', 's3'] as const) {
    const addr = address(name, s);
    if (!embedded(name, s)) {
      const r = await answers(probes[name]);
      if (!r.ok) throw new ServerUnreachableError(r.detail ?? `${name} at ${addr} did not answer`);
      results.push({ name, address: addr, action: 'external' });
      continue;
    }
    if ((await answers(probes[name])).ok) {
      results.push({ name, address: addr, action: 'already running' });
      continue;
    }
    if (ownedPid(s, name)) {
      // Ours, alive, but not answering yet (another `up` is starting it): wait for it instead of a second copy.
      await waitHealthy(s, name, probes[name]);
      results.push({ name, address: addr, action: 'already running' });
      continue;
    }
    log(`starting ${name} at ${addr} (log: ${logFile(s, name)})`);
    await start(s, name);
    await waitHealthy(s, name, probes[name]);
    results.push({ name, address: addr, action: 'started' });
  }
  return results;
}

async function start(s: InfraSettings, name: ServerName): Promise<void> {
  mkdirSync(runDir(s), { recursive: true });
  mkdirSync(join(s.home, 'logs'), { recursive: true });
  if (name === 's3') mkdirSync(join(s.home, 's3'), { recursive: true });
  const spec = launchSpec(name, s);
  const out = openSync(logFile(s, name), 'a');
  try {
    // Detached into its own session so it outlives this command and is not killed by a terminal's ^C.
    const child = spawn(spec.bin, spec.args, { cwd: s.home, detached: true, stdio: ['ignore', out, out] });
    if (child.pid === undefined) throw new Error(`could not start ${spec.bin}`);
    writeFileSync(pidFile(s, name), `${child.pid}\n`);
    child.unref();
  } finally {
    closeSync(out);
  }
}

async function waitHealthy(s: InfraSettings, name: ServerName, probe: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + s.devStartTimeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    const r = await answers(probe);
    if (r.ok) return;
    last = r.detail ?? '';
    if (!ownedPid(s, name)) {
      throw new ServerUnreachableError(
        `${name} exited during start-up; see ${logFile(s, name)}:\n${tail(logFile(s, name))}`,
      );
    }
    await sleep(300);
  }
  throw new ServerUnreachableError(
    `${name} did not become healthy at ${address(name, s)} within ${s.devStartTimeoutMs / 1000} s ` +
      `(last error: ${last}); see ${logFile(s, name)}`,
  );
}

function tail(file: string, lines = 15): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Stops the servers `up` started (and only those). Returns the names stopped. */
export async function down(s: InfraSettings): Promise<ServerName[]> {
  const stopped: ServerName[] = [];
  for (const name of ['s3', 'temporal'] as const) {
    const pid = ownedPid(s, name);
    if (!pid) continue;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 15_000;
    while (Date.now() < deadline && alive(pid)) await sleep(100);
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    rmSync(pidFile(s, name), { force: true });
    stopped.push(name);
  }
  return stopped;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '); // a zombie has exited
  } catch {
    return false;
  }
}

function shellQuote(v: string): string {
  return /^[A-Za-z0-9_./:@%+=,-]+$/.test(v) ? v : `'${v.replaceAll("'", `'\\''`)}'`;
}

/** The standard variables another tool needs to reach the same servers, as `export` lines. */
export function envLines(s: InfraSettings): string {
  const vars: [string, string | undefined][] = [
    ['TEMPORAL_ADDRESS', s.temporal.address],
    ['TEMPORAL_NAMESPACE', s.temporal.namespace],
    ['AWS_ENDPOINT_URL_S3', s.s3.endpoint],
    ['AWS_ACCESS_KEY_ID', s.s3.credentials?.accessKeyId],
    ['AWS_SECRET_ACCESS_KEY', s.s3.credentials?.secretAccessKey],
    ['AWS_REGION', s.s3.region],
    ['LEA_BUCKET', s.s3.bucket],
  ];
  return vars
    .filter((v): v is [string, string] => v[1] !== undefined)
    .map(([k, v]) => `export ${k}=${shellQuote(v)}`)
    .join('\n');
}
