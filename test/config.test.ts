import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  experimentJsonSchema,
  loadExperimentConfig,
  parseExperimentConfig,
} from '../lib/config/experiment.js';
import { loadInfraSettings } from '../lib/config/infra.js';
import { BadInputError } from '../lib/errors.js';
import { repoRoot, runLea } from './helpers/lea.js';

const valid = `name: demo\npipeline: hello\nseed: 1\nhello:\n  message: hi\n  repeat: 2\n`;

function rejects(text: string, ...fragments: string[]): void {
  assert.throws(
    () => parseExperimentConfig(text, 'cfg.yaml'),
    (err: unknown) => {
      assert.ok(err instanceof BadInputError, `expected BadInputError, got ${String(err)}`);
      for (const f of ['cfg.yaml', ...fragments]) assert.match(err.message, new RegExp(f), err.message);
      return true;
    },
  );
}

test('the shipped hello config is valid and defaults are applied', () => {
  const cfg = loadExperimentConfig(join(repoRoot, 'configs/hello.yaml'));
  assert.ok(cfg.pipeline === 'hello');
  assert.equal(cfg.hello.repeat, 3);
  const noRepeat = parseExperimentConfig(`name: x\npipeline: hello\nhello: {message: m}\n`, 'x.yaml');
  assert.ok(noRepeat.pipeline === 'hello');
  assert.equal(noRepeat.hello.repeat, 3);
  assert.equal(noRepeat.seed, 0);
});

test('a wrong type names the field and the file', () => {
  rejects(valid.replace('repeat: 2', 'repeat: two'), 'hello\\.repeat', 'number');
});

test('an unknown key names the key', () => {
  rejects(valid + 'learning_rate: 3\n', 'learning_rate');
  rejects(valid.replace('  repeat: 2', '  repeat: 2\n  colour: red'), 'hello', 'colour');
});

test('a missing field names the field', () => {
  rejects(`name: demo\npipeline: hello\nhello:\n  repeat: 2\n`, 'hello\\.message');
  rejects(`pipeline: hello\nhello: {message: m}\n`, 'name');
});

test('an unknown pipeline and broken YAML are clear errors', () => {
  rejects(valid.replace('pipeline: hello', 'pipeline: nope'), 'pipeline');
  rejects('name: [unclosed\n', 'YAML', 'line');
  rejects(valid + 'name: again\n', 'YAML');
});

test('--set overrides are applied before validation', () => {
  const cfg = parseExperimentConfig(valid, 'cfg.yaml', ['hello.repeat=7', 'seed=9']);
  assert.ok(cfg.pipeline === 'hello');
  assert.equal(cfg.hello.repeat, 7);
  assert.equal(cfg.seed, 9);
  assert.throws(() => parseExperimentConfig(valid, 'cfg.yaml', ['hello.repeat=-1']), /hello\.repeat/);
  assert.throws(() => parseExperimentConfig(valid, 'cfg.yaml', ['novalue']), /key\.path=value/);
  assert.throws(() => parseExperimentConfig(valid, 'cfg.yaml', ['__proto__.x=1']), /invalid key path/);
});

test('the JSON Schema describes the hello section', () => {
  const schema = JSON.stringify(experimentJsonSchema());
  for (const k of ['pipeline', 'hello', 'message', 'repeat']) assert.ok(schema.includes(`"${k}"`), k);
});

test('lea config validate exits 2 with the field and file on a bad config, 0 on a good one', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-cfg-'));
  const bad = join(dir, 'bad.yaml');
  writeFileSync(bad, valid.replace('repeat: 2', 'repeat: "2"'));
  const r = runLea(['config', 'validate', bad]);
  assert.equal(r.code, 2, r.stderr);
  assert.match(r.stderr, /bad\.yaml/);
  assert.match(r.stderr, /hello\.repeat/);
  const ok = runLea(['config', 'validate', 'configs/hello.yaml']);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(ok.stdout).name, 'hello');
  const missing = runLea(['config', 'validate', join(dir, 'absent.yaml')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /absent\.yaml.*ENOENT/);
});

test('infrastructure variables are validated and named', () => {
  assert.throws(() => loadInfraSettings({ LEA_S3_PORT: 'eighty' }), /LEA_S3_PORT/);
  assert.throws(() => loadInfraSettings({ LEA_BUCKET: 'Bad_Bucket' }), /LEA_BUCKET/);
  assert.throws(
    () => loadInfraSettings({ AWS_ENDPOINT_URL_S3: 'not a url', LEA_BUCKET: 'b1b' }),
    /AWS_ENDPOINT_URL_S3/,
  );
  const home = mkdtempSync(join(tmpdir(), 'lea-home-'));
  const local = loadInfraSettings({ LEA_HOME: home });
  assert.equal(local.temporal.embedded, true);
  assert.equal(local.s3.embedded, true);
  assert.ok(local.s3.credentials?.accessKeyId, 'embedded S3 always gets credentials');
  assert.deepEqual(loadInfraSettings({ LEA_HOME: home }).s3.credentials, local.s3.credentials);
  const aws = loadInfraSettings({
    LEA_HOME: home,
    LEA_BUCKET: 'my-bucket',
    TEMPORAL_ADDRESS: 'ns.tmprl.cloud:7233',
    TEMPORAL_API_KEY: 'k',
  });
  assert.equal(aws.s3.embedded, false);
  assert.equal(aws.s3.endpoint, undefined);
  assert.equal(aws.s3.forcePathStyle, false);
  assert.equal(aws.s3.credentials, undefined, 'AWS uses the default credential chain');
  assert.equal(aws.temporal.embedded, false);
  assert.ok(aws.temporal.tls, 'an API key implies TLS');
});

test('lea config validate applies the rules lea run applies: the stage plan, the dataset manifest, the baseline', () => {
  const dir = mkdtempSync(join(tmpdir(), 'lea-cfg-'));
  const smoke = readFileSync(join(repoRoot, 'configs/smoke.yaml'), 'utf8');
  const withSource = (source: string) => {
    const file = join(dir, `cfg-${Math.random().toString(36).slice(2)}.yaml`);
    writeFileSync(
      file,
      smoke.replace('  source:\n    kind: synthetic\n    scale: tiny\n    seed: 1\n', source),
    );
    return file;
  };
  const local = runLea(['config', 'validate', withSource('  source: { kind: local, path: /data/god }\n')]);
  assert.equal(local.code, 2, local.stderr);
  assert.match(local.stderr, /data\.source\.kind local/);
  const manifest = join(dir, 'manifest.yaml');
  writeFileSync(manifest, 'dataset: god\nfiles:\n  - { name: sbj_1.npz, sha256: nothex }\n');
  const badManifest = runLea([
    'config',
    'validate',
    withSource(`  source: { kind: fetch, manifest: ${manifest} }\n`),
  ]);
  assert.equal(badManifest.code, 2, badManifest.stderr);
  assert.match(badManifest.stderr, /^lea: .*manifest\.yaml: invalid dataset manifest: files\.0\.sha256: /);
  const baseline = join(dir, 'baseline.yaml');
  writeFileSync(baseline, 'name: b\nsource: t\nmetrics:\n  encode.pearson: { value: 0.5, tolerance: -1 }\n');
  const badBaseline = runLea(['config', 'validate', 'configs/smoke.yaml', '--baseline', baseline]);
  assert.equal(badBaseline.code, 2, badBaseline.stderr);
  assert.equal(badBaseline.stderr.trim().split('\n').length, 1, badBaseline.stderr);
  assert.match(badBaseline.stderr, /baseline\.yaml: invalid baseline: metrics\.encode\.pearson\.tolerance: /);
  const ok = runLea(['config', 'validate', 'configs/smoke.yaml']);
  assert.equal(ok.code, 0, ok.stderr);
});
