/**
 * Infrastructure settings: where Temporal and S3 are. Read once from the environment, validated with zod.
 *
 * A server is "embedded" (started by `lea dev up`, address derived from LEA_* ports) when its variables are
 * unset: TEMPORAL_ADDRESS for Temporal; AWS_ENDPOINT_URL_S3 and LEA_BUCKET for S3. Setting them points every
 * command at a cluster, Temporal Cloud, AWS S3, MinIO, R2 or SeaweedFS, and nothing is started locally.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { BadInputError } from '../errors.js';

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

const port = z.coerce.number().int().min(1).max(65535);
const nonEmpty = z.string().min(1);
const flag = z.enum(['0', '1', 'true', 'false']).transform((v) => v === '1' || v === 'true');

const envSchema = z.object({
  LEA_HOME: nonEmpty.optional(),
  LEA_TEMPORAL_PORT: port.default(7233),
  LEA_TEMPORAL_UI_PORT: port.default(8233),
  // SeaweedFS listens on LEA_S3_PORT and on the next 6 ports (master, volume, filer, admin, iceberg,
  // lance), each also at +10000 for gRPC; so the port must leave room below 65536.
  LEA_S3_PORT: port.max(55000).default(8333),
  LEA_DEV_START_TIMEOUT_S: z.coerce.number().positive().default(90),
  LEA_SCRATCH_MAX_GB: z.coerce.number().positive().optional(),
  LEA_TASK_QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_.-]+$/)
    .default('lea'),
  TEMPORAL_ADDRESS: nonEmpty.optional(),
  TEMPORAL_NAMESPACE: nonEmpty.default('default'),
  TEMPORAL_API_KEY: nonEmpty.optional(),
  TEMPORAL_TLS: flag.optional(),
  TEMPORAL_TLS_CLIENT_CERT_PATH: nonEmpty.optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: nonEmpty.optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: nonEmpty.optional(),
  TEMPORAL_TLS_SERVER_NAME: nonEmpty.optional(),
  AWS_ENDPOINT_URL_S3: z.url().optional(),
  AWS_ACCESS_KEY_ID: nonEmpty.optional(),
  AWS_SECRET_ACCESS_KEY: nonEmpty.optional(),
  AWS_REGION: nonEmpty.default('us-east-1'),
  LEA_BUCKET: z
    .string()
    .regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be a valid S3 bucket name')
    .optional(),
  LEA_S3_PREFIX: z
    .string()
    .regex(/^([A-Za-z0-9_.=-]+\/)*$/, 'must be empty or end with "/" and hold only safe characters')
    .default(''),
  LEA_S3_FORCE_PATH_STYLE: flag.optional(),
});

export interface TemporalSettings {
  address: string;
  namespace: string;
  embedded: boolean;
  uiPort: number;
  apiKey?: string;
  tls?: { clientCertPath?: string; clientKeyPath?: string; serverCaCertPath?: string; serverName?: string };
}

export interface S3Settings {
  /** Undefined for AWS S3 itself: the SDK resolves the regional endpoint. */
  endpoint?: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  /** Undefined means the SDK's default credential chain (profiles, instance roles, ...). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  embedded: boolean;
  port: number;
}

export interface InfraSettings {
  home: string;
  temporal: TemporalSettings;
  s3: S3Settings;
  taskQueuePrefix: string;
  devStartTimeoutMs: number;
  /** LEA_SCRATCH_MAX_GB: a worker removes finished attempts' scratch folders beyond this many bytes. */
  scratchMaxBytes?: number;
}

export function loadInfraSettings(env: NodeJS.ProcessEnv = process.env): InfraSettings {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new BadInputError(`invalid environment variables:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const home = resolve(e.LEA_HOME ?? join(projectRoot, '.lea'));

  const tlsWanted = e.TEMPORAL_TLS ?? Boolean(e.TEMPORAL_TLS_CLIENT_CERT_PATH || e.TEMPORAL_API_KEY);
  const temporal: TemporalSettings = {
    address: e.TEMPORAL_ADDRESS ?? `127.0.0.1:${e.LEA_TEMPORAL_PORT}`,
    namespace: e.TEMPORAL_NAMESPACE,
    embedded: e.TEMPORAL_ADDRESS === undefined,
    uiPort: e.LEA_TEMPORAL_UI_PORT,
    ...(e.TEMPORAL_API_KEY ? { apiKey: e.TEMPORAL_API_KEY } : {}),
    ...(tlsWanted
      ? {
          tls: {
            clientCertPath: e.TEMPORAL_TLS_CLIENT_CERT_PATH,
            clientKeyPath: e.TEMPORAL_TLS_CLIENT_KEY_PATH,
            serverCaCertPath: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH,
            serverName: e.TEMPORAL_TLS_SERVER_NAME,
          },
        }
      : {}),
  };

  const s3Embedded = e.AWS_ENDPOINT_URL_S3 === undefined && e.LEA_BUCKET === undefined;
  let credentials: S3Settings['credentials'];
  if (e.AWS_ACCESS_KEY_ID && e.AWS_SECRET_ACCESS_KEY) {
    credentials = { accessKeyId: e.AWS_ACCESS_KEY_ID, secretAccessKey: e.AWS_SECRET_ACCESS_KEY };
  } else if (s3Embedded) {
    credentials = embeddedS3Credentials(home);
  }
  const endpoint = s3Embedded ? `http://127.0.0.1:${e.LEA_S3_PORT}` : e.AWS_ENDPOINT_URL_S3;
  const s3: S3Settings = {
    ...(endpoint ? { endpoint } : {}),
    region: e.AWS_REGION,
    bucket: e.LEA_BUCKET ?? 'lea',
    prefix: e.LEA_S3_PREFIX,
    // S3-compatible servers (SeaweedFS, MinIO) want path-style URLs; AWS S3 wants virtual-hosted ones.
    forcePathStyle: e.LEA_S3_FORCE_PATH_STYLE ?? endpoint !== undefined,
    ...(credentials ? { credentials } : {}),
    embedded: s3Embedded,
    port: e.LEA_S3_PORT,
  };

  return {
    home,
    temporal,
    s3,
    taskQueuePrefix: e.LEA_TASK_QUEUE_PREFIX,
    devStartTimeoutMs: e.LEA_DEV_START_TIMEOUT_S * 1000,
    ...(e.LEA_SCRATCH_MAX_GB ? { scratchMaxBytes: e.LEA_SCRATCH_MAX_GB * 1e9 } : {}),
  };
}

/** The embedded SeaweedFS never runs without credentials: generate a key pair once, keep it private. */
function embeddedS3Credentials(home: string): { accessKeyId: string; secretAccessKey: string } {
  const file = join(home, 's3-credentials.json');
  if (existsSync(file)) {
    const stored = z
      .object({ accessKeyId: nonEmpty, secretAccessKey: nonEmpty })
      .safeParse(JSON.parse(readFileSync(file, 'utf8')));
    if (!stored.success)
      throw new BadInputError(`${file}: malformed credentials file; delete it to regenerate`);
    return stored.data;
  }
  mkdirSync(home, { recursive: true });
  const creds = {
    accessKeyId: `LEA${randomBytes(8).toString('hex').toUpperCase()}`,
    secretAccessKey: randomBytes(24).toString('base64url'),
  };
  try {
    writeFileSync(file, JSON.stringify(creds, null, 2), { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process created it first: use theirs, so both talk to the server with the same keys.
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return embeddedS3Credentials(home);
    throw err;
  }
  chmodSync(file, 0o600);
  return creds;
}

export function taskQueue(settings: InfraSettings, kind: 'cpu' | 'gpu'): string {
  return `${settings.taskQueuePrefix}-${kind}`;
}
