/** The `lea` CLI against the real servers that scripts/test.sh started: dev up/status/env, run, errors. */
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadInfraSettings } from '../lib/config/infra.js';
import { embeddedEnv, runLea } from './helpers/lea.js';

const settings = loadInfraSettings(process.env);

function pidFiles(): string[] {
  return ['temporal', 's3'].map((n) => readFileSync(join(settings.home, 'run', `${n}.pid`), 'utf8'));
}

test('lea dev up a second time starts nothing', () => {
  const before = pidFiles();
  const r = runLea(['dev', 'up'], embeddedEnv());
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /temporal: already running at 127\.0\.0\.1:/);
  assert.match(r.stdout, /s3: already running at http:\/\/127\.0\.0\.1:/);
  assert.doesNotMatch(r.stderr, /starting/);
  assert.deepEqual(pidFiles(), before);
});

test('lea dev status exits 0 when both answer and 1 naming the address that does not', () => {
  const ok = runLea(['dev', 'status', '--json'], embeddedEnv());
  assert.equal(ok.code, 0, ok.stderr);
  const states = JSON.parse(ok.stdout) as { name: string; answering: boolean; embedded: boolean }[];
  assert.deepEqual(
    states.map((s) => [s.name, s.answering, s.embedded]),
    [
      ['temporal', true, true],
      ['s3', true, true],
    ],
  );
  const down = runLea(['dev', 'status'], { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:9' });
  assert.equal(down.code, 1);
  assert.match(down.stdout, /temporal: DOWN at 127\.0\.0\.1:9.*did not answer/);
});

test('lea dev env prints export lines that reach the same servers', () => {
  const r = runLea(['dev', 'env'], embeddedEnv());
  assert.equal(r.code, 0, r.stderr);
  const vars = Object.fromEntries(
    r.stdout
      .trim()
      .split('\n')
      .map((l) => {
        const m = /^export ([A-Z0-9_]+)=(.*)$/.exec(l);
        assert.ok(m, `not an export line: ${l}`);
        return [m[1], m[2]];
      }),
  );
  for (const k of [
    'TEMPORAL_ADDRESS',
    'TEMPORAL_NAMESPACE',
    'AWS_ENDPOINT_URL_S3',
    'AWS_ACCESS_KEY_ID',
    'AWS_SECRET_ACCESS_KEY',
    'AWS_REGION',
    'LEA_BUCKET',
  ]) {
    assert.ok(vars[k], k);
  }
  assert.equal(vars.TEMPORAL_ADDRESS, settings.temporal.address);
});

test('commands pointed at a missing server name the address and start nothing', () => {
  const r = runLea(['run', 'configs/hello.yaml', '--wait'], {
    ...process.env,
    TEMPORAL_ADDRESS: '127.0.0.1:9',
  });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /127\.0\.0\.1:9 did not answer/);
  const s3 = runLea(['run', 'configs/hello.yaml'], {
    ...process.env,
    AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9',
  });
  assert.equal(s3.code, 1);
  assert.match(s3.stderr, /http:\/\/127\.0\.0\.1:9 did not answer/);
  assert.doesNotMatch(r.stderr + s3.stderr, /starting/);
});

test('the hello workflow completes and its artifact is readable with a plain S3 client', async () => {
  const r = runLea(['run', 'configs/hello.yaml', '--wait', '--json', '--set', 'hello.repeat=4']);
  assert.equal(r.code, 0, r.stderr);
  const out = JSON.parse(r.stdout) as {
    runId: string;
    status: string;
    config: string;
    result: { summary: { key: string } };
  };
  assert.equal(out.config, 'configs/hello.yaml');
  assert.equal(out.status, 'completed');
  assert.match(out.result.summary.key, new RegExp(`^runs/${out.runId}/hello/summary$`));
  // No project code from here on: the bucket layout is the contract.
  const plain = new S3Client({
    endpoint: process.env.AWS_ENDPOINT_URL_S3,
    region: process.env.AWS_REGION,
    forcePathStyle: true,
    credentials: {
      accessKeyId: process.env.AWS_ACCESS_KEY_ID!,
      secretAccessKey: process.env.AWS_SECRET_ACCESS_KEY!,
    },
  });
  const get = async (key: string) =>
    (
      await plain.send(new GetObjectCommand({ Bucket: process.env.LEA_BUCKET, Key: key }))
    ).Body!.transformToString();
  const manifest = JSON.parse(await get(`artifacts/${out.result.summary.key}/manifest.json`));
  assert.equal(manifest.meta.stage, 'summary');
  assert.equal(
    manifest.meta.inputs[0].key,
    `runs/${out.runId}/hello/greeting`,
    'lineage names the input artifact',
  );
  const sha = manifest.files[0].sha256;
  const summary = JSON.parse(await get(`blobs/sha256/${sha.slice(0, 2)}/${sha}`));
  assert.equal(summary.lines, 4);
  assert.match(summary.firstLine, /^1\/4 Hello from LEA \(seed 666\)$/);
  plain.destroy();
});

test('unknown flags and bad values are errors that name the flag', () => {
  const unknown = runLea(['run', 'configs/hello.yaml', '--wiat']);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown option '--wiat'/);
  const badChoice = runLea(['run', 'configs/hello.yaml', '--local-worker', 'sometimes']);
  assert.equal(badChoice.code, 2);
  assert.match(badChoice.stderr, /--local-worker.*sometimes/);
  const badNumber = runLea(['worker', '--max-activities', 'zero']);
  assert.equal(badNumber.code, 2);
  assert.match(badNumber.stderr, /--max-activities/);
  const unknownCommand = runLea(['frobnicate']);
  assert.equal(unknownCommand.code, 2);
  assert.match(unknownCommand.stderr, /unknown command 'frobnicate'/);
});

test('every command has --help', () => {
  for (const args of [
    [],
    ['dev'],
    ['dev', 'up'],
    ['dev', 'down'],
    ['dev', 'status'],
    ['dev', 'env'],
    ['config', 'schema'],
    ['config', 'validate'],
    ['run'],
    ['worker'],
  ]) {
    const r = runLea([...args, '--help']);
    assert.equal(r.code, 0, `${args.join(' ')} --help: ${r.stderr}`);
    assert.match(r.stdout, /Usage: lea/);
  }
});
