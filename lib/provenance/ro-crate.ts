/**
 * A run's provenance as a Workflow Run RO-Crate (RO-Crate 1.1 with the Process, Workflow and Provenance Run
 * Crate profiles 0.5, https://w3id.org/ro/wfrun/provenance/0.5), the exchange format WorkflowHub and the
 * `rocrate` tools read. Pure: the caller gathers a plain description of the run (record, plan, manifests) and
 * writes the files this returns.
 *
 * The mapping: the run's plan is the workflow (`workflows/<run>.json`, the crate's mainEntity), each planned
 * stage a HowToStep whose tool (SoftwareApplication) is the stage's implementation; the run is a CreateAction
 * of the workflow, each stage that ran (or came from the cache) a CreateAction of its tool with the artifact
 * files it read and wrote (sha256, size), a ControlAction ties the two, and one OrganizeAction is the
 * engine's. Artifact files the crate does not carry get `#artifacts/<key>/<path>` ids; those it carries
 * (`--with-files`) are data entities at `artifacts/<key>/<path>`. A suite's members are nested workflows.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ComputeProvenance } from '../compute/backend.js';
import type { RunStatus, StageStatus } from '../pipeline/run-record.js';
import type { ArtifactFile } from '../storage/artifact-store.js';
import type { WeightsRecord } from '../weights/import.js';

export interface ArtifactDescription {
  key: string;
  files: ArtifactFile[];
  /** Imported networks: where they came from. */
  weights?: WeightsRecord;
}

export interface StageDescription {
  name: string;
  impl: string;
  /** Input name → the stage whose output it is (the plan's edges). */
  needs: Record<string, string>;
  /** Input name → imported weights name. */
  weights?: Record<string, string>;
  config: unknown;
  status: StageStatus;
  cached: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  error: string | null;
  /** Every artifact the stage read, by input name (weights included). */
  inputs: Record<string, ArtifactDescription>;
  output: ArtifactDescription | null;
  /** From the output's manifest: the implementation's code version, what computed it, and on what. */
  implVersion?: string;
  computedBy?: string;
  compute?: ComputeProvenance;
}

export interface RunDescription {
  runId: string;
  config: string;
  status: RunStatus;
  startedAt: string | null;
  finishedAt: string | null;
  error?: string;
  /** The pipeline's code version the run was started with (git commit). */
  codeVersion: string;
  stages: StageDescription[];
  /** The stage whose output holds the metrics (and scores). */
  metricsStage?: string;
  metrics: Record<string, number>;
  definitions: Record<string, { definition: string; paper: boolean }>;
  intervals?: Record<string, [number, number]>;
  intervalMethod?: string;
  /** A suite's standard deviation over its members. */
  sd?: Record<string, number>;
  report: ArtifactDescription | null;
  /** A suite's runs. */
  members?: RunDescription[];
}

export interface CrateOptions {
  /** When the crate was made (the root's datePublished). */
  exportedAt: string;
  /** Carry the small outputs (metrics stage output, report) and the record in the crate. */
  withFiles: boolean;
  /** The run record as `lea status --json` prints it, written as `record.json` with the files. */
  record?: unknown;
}

export interface Crate {
  /** ro-crate-metadata.json's content. */
  metadata: { '@context': unknown; '@graph': Entity[] };
  /** Text files to write into the crate folder: path → content. */
  texts: Record<string, string>;
  /** Artifact files to copy into the crate folder at `to`. */
  copies: { key: string; path: string; to: string }[];
}

type Entity = { '@id': string; '@type': string | string[] } & Record<string, unknown>;
const ref = (id: string) => ({ '@id': id });
const refs = (ids: Iterable<string>) => [...ids].map(ref);

export const PROFILES = {
  process: 'https://w3id.org/ro/wfrun/process/0.5',
  workflow: 'https://w3id.org/ro/wfrun/workflow/0.5',
  provenance: 'https://w3id.org/ro/wfrun/provenance/0.5',
  workflowRoCrate: 'https://w3id.org/workflowhub/workflow-ro-crate/1.0',
} as const;
const PROFILE_NAMES: Record<string, string> = {
  process: 'Process Run Crate',
  workflow: 'Workflow Run Crate',
  provenance: 'Provenance Run Crate',
  workflowRoCrate: 'Workflow RO-Crate',
};
const ENGINE = '#engine';
const PLAN_LANGUAGE = '#lea-stage-plan';

const ACTION_STATUS: Partial<Record<RunStatus | StageStatus, string>> = {
  completed: 'http://schema.org/CompletedActionStatus',
  cached: 'http://schema.org/CompletedActionStatus',
  running: 'http://schema.org/ActiveActionStatus',
};
const actionStatus = (s: RunStatus | StageStatus) =>
  ACTION_STATUS[s] ?? 'http://schema.org/FailedActionStatus';
const timesOf = (x: { startedAt: string | null; finishedAt: string | null }) => ({
  ...(x.startedAt ? { startTime: x.startedAt } : {}),
  ...(x.finishedAt ? { endTime: x.finishedAt } : {}),
});

/** Builds the crate's graph; entities are merged by id, and files collect every parameter they realise. */
class Graph {
  readonly entities = new Map<string, Entity>();
  private readonly realises = new Map<string, Set<string>>();
  /** Every File: the root lists them all in hasPart, those the crate does not carry by their `#` ids. */
  readonly dataEntities = new Set<string>();
  readonly copies: Crate['copies'] = [];
  readonly controls: string[] = [];

  constructor(private readonly carried: Set<string>) {}

  add(e: Entity): string {
    this.entities.set(e['@id'], { ...this.entities.get(e['@id']), ...e });
    return e['@id'];
  }

  /** The File entities of an artifact, each realising `param` (a FormalParameter id). */
  artifactFiles(a: ArtifactDescription, param: string): string[] {
    const source = a.weights ? this.weightsSource(a.weights) : undefined;
    return a.files.map((f) => {
      const carried = this.carried.has(a.key);
      const id = `${carried ? '' : '#'}artifacts/${a.key}/${f.path}`;
      if (carried && !this.dataEntities.has(id)) this.copies.push({ key: a.key, path: f.path, to: id });
      this.dataEntities.add(id);
      const seen = this.realises.get(id) ?? new Set();
      this.realises.set(id, seen.add(param));
      return this.add({
        '@id': id,
        '@type': 'File',
        name: f.path,
        description: `file of the artifact '${a.key}'`,
        contentSize: String(f.size),
        sha256: f.sha256,
        exampleOfWork: refs(seen),
        ...(source ? { isBasedOn: ref(source) } : {}),
      });
    });
  }

  /** The file an imported network was converted from: its name, format and hash as the import recorded them. */
  private weightsSource(w: WeightsRecord): string {
    const id = `#weights-source/${w.source.sha256}`;
    this.dataEntities.add(id);
    return this.add({
      '@id': id,
      '@type': 'File',
      name: w.source.file,
      description: `source of the imported ${w.kind} weights '${w.name}' (mapping version ${w.mappingVersion}, ${w.parameters} parameters)`,
      encodingFormat: w.source.format,
      contentSize: String(w.source.size),
      sha256: w.source.sha256,
    });
  }

  param(id: string, name: string, additionalType: string, description?: string): string {
    return this.add({
      '@id': id,
      '@type': 'FormalParameter',
      name,
      additionalType,
      ...(description ? { description } : {}),
    });
  }

  connection(id: string, source: string, target: string): string {
    return this.add({
      '@id': id,
      '@type': 'ParameterConnection',
      sourceParameter: ref(source),
      targetParameter: ref(target),
    });
  }

  /** The step (HowToStep), its execution (CreateAction) and the ControlAction between them. */
  execution(
    stepId: string,
    step: Omit<Entity, '@id' | '@type'>,
    action: Entity | undefined,
    status: RunStatus | StageStatus,
    error: string | null | undefined,
  ): string {
    this.add({ '@id': stepId, '@type': 'HowToStep', ...step });
    if (action) {
      this.add(action);
      this.controls.push(
        this.add({
          '@id': `${stepId}/control`,
          '@type': 'ControlAction',
          name: `orchestrate ${String(step.name)}`,
          instrument: ref(stepId),
          object: ref(action['@id']),
          actionStatus: actionStatus(status),
          ...(error ? { error } : {}),
        }),
      );
    }
    return stepId;
  }
}

/** The metrics as PropertyValues: value, definition, interval (and a suite's sd), each realising an output. */
function metricValues(g: Graph, run: RunDescription, base: string, outputs: string[]): string[] {
  return Object.entries(run.metrics).map(([name, value]) => {
    const d = run.definitions[name];
    const description = d
      ? `${d.definition} (${d.paper ? "the paper's definition" : "not the paper's definition"})`
      : undefined;
    const param = g.param(`${base}/output/${name}`, name, 'Float', description);
    outputs.push(param);
    const ci = run.intervals?.[name];
    const sd = run.sd?.[name];
    return g.add({
      '@id': `${base}/metric/${name}`,
      '@type': 'PropertyValue',
      name,
      value,
      ...(description ? { description } : {}),
      ...(ci ? { minValue: ci[0], maxValue: ci[1], measurementTechnique: run.intervalMethod } : {}),
      ...(sd !== undefined
        ? { disambiguatingDescription: `standard deviation over the suite's runs: ${sd}` }
        : {}),
      exampleOfWork: ref(param),
    });
  });
}

/** A stage's tool: its implementation and version, what it ran on, its parameters. */
function stageTool(g: Graph, s: StageDescription, base: string): string {
  const tool = `${base}/tool/${s.name}`;
  const c = s.compute;
  const software = Object.entries(c?.versions ?? {}).map(([name, version]) =>
    g.add({ '@id': `#software/${name}/${version}`, '@type': 'SoftwareApplication', name, version }),
  );
  const inputs = [...Object.keys(s.needs), ...Object.keys(s.weights ?? {})].map((input) =>
    g.param(`${tool}/input/${input}`, input, 'Dataset'),
  );
  g.add({
    '@id': tool,
    '@type': 'SoftwareApplication',
    name: s.impl,
    ...(s.implVersion ? { softwareVersion: s.implVersion } : {}),
    description:
      `stage implementation '${s.impl}'` +
      (c
        ? `; computed on the tfjs ${c.backend} backend (${c.choice}, ${c.device}, ${c.threads} threads)`
        : ''),
    input: refs([...inputs, g.param(`${tool}/config`, 'config', 'PropertyValue')]),
    output: ref(g.param(`${tool}/output`, 'output', 'Dataset')),
    ...(software.length ? { softwareRequirements: refs(software) } : {}),
  });
  return tool;
}

/** A stage's execution: the files it read and wrote, its config, its environment, when and how it ended. */
function stageAction(g: Graph, s: StageDescription, base: string, tool: string): Entity | undefined {
  if (s.status === 'pending') return undefined; // it never ran
  const read = Object.entries(s.inputs).flatMap(([input, a]) => g.artifactFiles(a, `${tool}/input/${input}`));
  const config = g.add({
    '@id': `${base}/config/${s.name}`,
    '@type': 'PropertyValue',
    name: `${s.name} config`,
    value: JSON.stringify(s.config),
    exampleOfWork: ref(`${tool}/config`),
  });
  const env = Object.entries(s.compute?.settings ?? {}).map(([name, value]) =>
    g.add({ '@id': `${base}/env/${s.name}/${name}`, '@type': 'PropertyValue', name, value }),
  );
  const cached = s.cached ? `taken from the cache, computed by run ${s.computedBy ?? '(unknown)'}` : '';
  return {
    '@id': `${base}/action/${s.name}`,
    '@type': 'CreateAction',
    name: `stage ${s.name} of ${base.slice(1)}`,
    ...(cached ? { description: cached } : {}),
    instrument: ref(tool),
    object: refs([...read, config]),
    result: refs(s.output ? g.artifactFiles(s.output, `${tool}/output`) : []),
    ...timesOf(s),
    actionStatus: actionStatus(s.status),
    ...(s.error ? { error: s.error } : {}),
    ...(env.length ? { environment: refs(env) } : {}),
  };
}

/** A run's plan: one step per stage, its edges as parameter connections, its external inputs (weights). */
function runPlan(g: Graph, run: RunDescription, base: string) {
  const steps: string[] = [];
  const tools: string[] = [];
  const inputs = [
    g.param(`${base}/input/config`, 'config', 'Text', 'the experiment config the run was started with'),
  ];
  const external: string[] = [];
  run.stages.forEach((s, position) => {
    const tool = stageTool(g, s, base);
    tools.push(tool);
    const connection = Object.entries(s.needs).map(([input, from]) =>
      g.connection(
        `${base}/connection/${s.name}/${input}`,
        `${base}/tool/${from}/output`,
        `${tool}/input/${input}`,
      ),
    );
    for (const [input, name] of Object.entries(s.weights ?? {})) {
      const param = g.param(
        `${base}/input/weights/${name}`,
        `weights/${name}`,
        'Dataset',
        `imported weights '${name}'`,
      );
      if (!inputs.includes(param)) inputs.push(param);
      connection.push(g.connection(`${base}/connection/${s.name}/${input}`, param, `${tool}/input/${input}`));
      const a = s.inputs[input];
      if (a) external.push(...g.artifactFiles(a, param));
    }
    const action = stageAction(g, s, base, tool);
    steps.push(
      g.execution(
        `${base}/step/${s.name}`,
        { name: s.name, position: String(position), workExample: ref(tool), connection: refs(connection) },
        action,
        s.status,
        s.error,
      ),
    );
  });
  return { steps, tools, inputs, external };
}

/** The outputs a run hands back: its metrics, the metrics stage's files and the report. */
function runResults(g: Graph, run: RunDescription, base: string, outputs: string[]): string[] {
  const results = metricValues(g, run, base, outputs);
  const metricsOut = run.stages.find((s) => s.name === run.metricsStage)?.output;
  const named: [string, ArtifactDescription | null | undefined][] = [
    ['scores', metricsOut],
    ['report', run.report],
  ];
  for (const [name, a] of named) {
    if (!a) continue;
    const param = g.param(`${base}/output/${name}`, name, 'Dataset');
    outputs.push(param);
    results.push(...g.artifactFiles(a, param));
  }
  return results;
}

/** A run (or a suite, whose members are nested workflows): its workflow file, its CreateAction. */
function describeRun(
  g: Graph,
  run: RunDescription,
  texts: Crate['texts'],
): { workflow: string; action: string } {
  const base = `#${run.runId}`;
  const workflow = `workflows/${run.runId}.json`;
  const members = (run.members ?? []).map((m) => ({ m, ...describeRun(g, m, texts) }));
  const plan = runPlan(g, run, base);
  const steps = [
    ...plan.steps,
    ...members.map(({ m, workflow: w, action }, position) =>
      g.execution(
        `${base}/step/${m.runId}`,
        { name: m.runId, position: String(position), workExample: ref(w) },
        g.entities.get(action),
        m.status,
        m.error,
      ),
    ),
  ];
  const outputs: string[] = [];
  const results = runResults(g, run, base, outputs);
  const config = g.add({
    '@id': `${base}/config`,
    '@type': 'PropertyValue',
    name: 'config',
    value: run.config,
    exampleOfWork: ref(`${base}/input/config`),
  });
  texts[workflow] = `${JSON.stringify(workflowText(run), null, 2)}\n`;
  g.dataEntities.add(workflow);
  g.add({
    '@id': workflow,
    '@type': ['File', 'SoftwareSourceCode', 'ComputationalWorkflow', 'HowTo'],
    name: run.members ? `suite ${run.runId}` : `the stage plan of ${run.runId} (${run.config})`,
    encodingFormat: 'application/json',
    programmingLanguage: ref(PLAN_LANGUAGE),
    version: run.codeVersion,
    input: refs(plan.inputs),
    output: refs(outputs),
    hasPart: refs([...plan.tools, ...members.map((m) => m.workflow)]),
    step: refs(steps),
  });
  const action = g.add({
    '@id': `${base}/run`,
    '@type': 'CreateAction',
    name: `${run.members ? 'suite' : 'run'} ${run.runId}`,
    instrument: ref(workflow),
    agent: ref(ENGINE),
    object: refs([config, ...plan.external]),
    result: refs(results),
    ...timesOf(run),
    actionStatus: actionStatus(run.status),
    ...(run.error ? { error: run.error } : {}),
  });
  return { workflow, action };
}

/** What a workflow file holds: the plan as the run executed it (a suite: its members' workflows). */
function workflowText(run: RunDescription): unknown {
  return {
    runId: run.runId,
    config: run.config,
    codeVersion: run.codeVersion,
    ...(run.members
      ? { members: run.members.map((m) => `${m.runId}.json`) }
      : {
          stages: run.stages.map((s) => ({
            name: s.name,
            impl: s.impl,
            needs: s.needs,
            ...(s.weights ? { weights: s.weights } : {}),
            config: s.config,
          })),
        }),
  };
}

/** Keys of the artifacts `--with-files` carries: each run's metrics stage output and report. */
function smallOutputs(run: RunDescription): string[] {
  const own = [run.stages.find((s) => s.name === run.metricsStage)?.output, run.report];
  return [...own.flatMap((a) => (a ? [a.key] : [])), ...(run.members ?? []).flatMap(smallOutputs)];
}

export function buildRoCrate(run: RunDescription, opts: CrateOptions): Crate {
  const g = new Graph(new Set(opts.withFiles ? smallOutputs(run) : []));
  const texts: Crate['texts'] = {};
  const { workflow, action } = describeRun(g, run, texts);
  if (opts.withFiles && opts.record !== undefined) {
    texts['record.json'] = `${JSON.stringify(opts.record, null, 2)}\n`;
    g.dataEntities.add('record.json');
    g.add({
      '@id': 'record.json',
      '@type': 'File',
      name: 'run record',
      description: 'the run record as `lea status --json` prints it',
      encodingFormat: 'application/json',
      about: ref(action),
    });
  }
  g.add({
    '@id': ENGINE,
    '@type': 'SoftwareApplication',
    name: 'lea-pipeline',
    softwareVersion: run.codeVersion,
    description: 'the Temporal-orchestrated LEA reproduction pipeline (its code version is the git commit)',
  });
  g.add({
    '@id': '#engine-run',
    '@type': 'OrganizeAction',
    name: `lea orchestrating ${run.runId}`,
    instrument: ref(ENGINE),
    object: refs(g.controls),
    result: ref(action),
    ...timesOf(run),
    actionStatus: actionStatus(run.status),
  });
  g.add({
    '@id': PLAN_LANGUAGE,
    '@type': 'ComputerLanguage',
    name: 'lea stage plan',
    alternateName: 'lea-plan',
    description: 'JSON: the stages of a run, their implementations, inputs (needs), weights and configs',
  });
  const profiles = Object.entries(PROFILES).map(([k, id]) =>
    g.add({ '@id': id, '@type': 'CreativeWork', name: PROFILE_NAMES[k], version: id.split('/').at(-1) }),
  );
  const root: Entity = {
    '@id': './',
    '@type': 'Dataset',
    name: `LEA ${run.members ? 'suite' : 'run'} ${run.runId}`,
    description: `Provenance of the LEA reproduction ${run.runId} (config ${run.config}), exported by lea`,
    datePublished: opts.exportedAt,
    conformsTo: refs(profiles),
    mainEntity: ref(workflow),
    hasPart: refs(g.dataEntities),
    mentions: refs([action, '#engine-run']),
  };
  const descriptor: Entity = {
    '@id': 'ro-crate-metadata.json',
    '@type': 'CreativeWork',
    about: ref('./'),
    conformsTo: refs(['https://w3id.org/ro/crate/1.1', PROFILES.workflowRoCrate]),
  };
  return {
    metadata: {
      '@context': ['https://w3id.org/ro/crate/1.1/context', 'https://w3id.org/ro/terms/workflow-run/context'],
      '@graph': [descriptor, root, ...g.entities.values()],
    },
    texts,
    copies: g.copies,
  };
}

/** Writes the crate into `dir`: its metadata, its text files, and the artifact files it carries. */
export async function writeCrate(
  dir: string,
  crate: Crate,
  readFile: (key: string, path: string) => Promise<Uint8Array>,
): Promise<void> {
  const put = async (to: string, body: string | Uint8Array) => {
    await mkdir(dirname(join(dir, to)), { recursive: true });
    await writeFile(join(dir, to), body);
  };
  for (const [to, text] of Object.entries(crate.texts)) await put(to, text);
  for (const c of crate.copies) await put(c.to, await readFile(c.key, c.path));
  await put('ro-crate-metadata.json', `${JSON.stringify(crate.metadata, null, 2)}\n`);
}
