/** The trainable stages (lib/train/registry.ts), run by lib/train/stages.ts with artifact checkpoints. */
import { join } from 'node:path';
import type { ReproductionConfig, Stage } from '../../lib/config/reproduction.js';
import { ArtifactCheckpointStore } from '../../lib/train/checkpoint.js';
import { eventFile, eventFileName } from '../../lib/report/tensorboard.js';
import { lossCurve, trainingScalars, type StepTimes } from '../../lib/train/curves.js';
import { TRAINABLE_STAGES } from '../../lib/train/registry.js';
import { runStage } from '../../lib/train/stages.js';
import { weightsFileIn } from '../../lib/weights/import.js';
import type { StageContext, StageImpl } from '../stage-contract.js';

/** Earlier stages whose model a stage reads from its training folder (lib/train/stages.ts layout). */
const MODEL_INPUTS = ['mae', 'tokenizer'] as const;

/** `dataInput`: the subject's prepared folder (fMRI side) or the image set (image side), as plan.ts wires it. */
export function trainingStage(stage: Stage, dataInput: 'prepared' | 'images'): StageImpl {
  return {
    codeVersion: TRAINABLE_STAGES[stage].codeVersion,
    async run(ctx: StageContext, raw: unknown) {
      // The plan passes the config sections this stage reads (lib/pipeline/plan.ts trainingConfig), which
      // were validated as part of the whole config before the run started.
      const cfg = raw as ReproductionConfig;
      const dataDir = await ctx.inputDir(dataInput);
      const outDir = join(ctx.workdir, 'train');
      for (const dep of MODEL_INPUTS) if (ctx.inputs[dep]) await ctx.inputDir(dep, join(outDir, dep));
      // imported upstream networks (the plan's StagePlan.weights), by input name
      const weights: Record<string, string> = {};
      for (const [name, manifest] of Object.entries(ctx.inputs)) {
        if (manifest.meta.weights)
          weights[name] = weightsFileIn(await ctx.inputDir(name, join(outDir, 'weights', name)));
      }
      // Checkpoints live under the cache key, so a retried attempt, or a later run of the same config
      // (lea resume), continues from the newest one instead of starting over.
      const checkpoints = new ArtifactCheckpointStore(ctx.store, ctx.checkpointPrefix);
      let progress: Record<string, number> = {};
      const startedAt = Date.now() / 1000;
      const stepTimes: StepTimes = new Float64Array(TRAINABLE_STAGES[stage].settings(cfg)?.iterations ?? 0);
      const result = await runStage(stage, cfg, {
        dataDir,
        outDir,
        store: checkpoints,
        weights,
        resume: true,
        onProgress: (p) => {
          if (p.step > p.startStep) stepTimes[p.step - p.startStep - 1] = Date.now() / 1000;
          progress = {
            step: p.step,
            totalSteps: p.iterations,
            loss: p.loss,
            stepsPerSecond: p.stepsPerSecond,
            resumedFromStep: p.startStep,
          };
          ctx.heartbeat(progress);
        },
        onCheckpoint: (ref) =>
          ctx.heartbeat({ ...progress, checkpoint: ref.location, checkpointStep: ref.step }),
        onNotice: (message) => ctx.heartbeat({ ...progress, notice: message }),
        signal: ctx.signal,
      });
      const curve = lossCurve(result);
      const settings = TRAINABLE_STAGES[stage].settings(cfg);
      const t = result.training;
      const scalars =
        t && settings
          ? trainingScalars(t, settings, stepTimes, startedAt)
          : curve.map((p) => ({ tag: 'train/loss', step: p.step, value: p.loss, wallTime: startedAt }));
      return {
        files: [
          { path: 'model.safetensors', fromFile: result.modelPath },
          { path: 'losses.json', bytes: Buffer.from(JSON.stringify(curve)) },
          { path: eventFileName(startedAt), bytes: eventFile(scalars) },
        ],
        summary: {
          parameters: result.parameters,
          steps: t?.step ?? curve.length,
          resumedFromStep: t?.startStep ?? 0,
          finalLoss: curve.length ? curve[curve.length - 1]!.loss : (progress.loss ?? NaN),
        },
        ...(result.transfer ? { meta: { transfer: result.transfer } } : {}),
      };
    },
  };
}
