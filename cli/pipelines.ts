/** What a config starts: the workflow type and its input, shared by `lea run` and `lea schedule`. */
import type { ExperimentConfig } from '../lib/config/experiment.js';

export interface StartSpec {
  workflowType: string;
  args: unknown[];
  memo: Record<string, unknown>;
}

export interface StartOptions {
  configFile: string;
}

export function startSpec(cfg: ExperimentConfig, opts: StartOptions): StartSpec {
  const memo = { config: opts.configFile, name: cfg.name, pipeline: cfg.pipeline };
  switch (cfg.pipeline) {
    case 'hello':
      return { workflowType: 'helloWorkflow', args: [{ ...cfg.hello, seed: cfg.seed }], memo };
  }
}
