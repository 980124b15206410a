/**
 * `lea train STAGE --config FILE [--data DIR] [--out DIR] [--resume] [--until STEP] [--set key=value]`: one
 * training stage of a reproduction config, outside Temporal (for debugging), with a progress line on stderr.
 * Outputs go to OUT/<stage>/ (model.safetensors, checkpoints/step-N/); earlier stages' outputs are read from
 * OUT. Without --data, a synthetic or local source is prepared once into OUT/data/.
 */
import { Argument, type Command } from 'commander';
import { stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { initCompute } from '../../lib/compute/backend.js';
import { loadExperimentConfig } from '../../lib/config/experiment.js';
import { STAGES, type ReproductionConfig, type Stage } from '../../lib/config/reproduction.js';
import { prepareDataset } from '../../lib/data/prepare.js';
import { synthesize } from '../../lib/data/synth.js';
import { BadInputError } from '../../lib/errors.js';
import type { TrainProgress } from '../../lib/train/loop.js';
import { runStage } from '../../lib/train/stages.js';
import { outputFolder, positiveInt } from '../args.js';
import { formatSeconds } from '../progress.js';

interface TrainFlags {
  config: string;
  data?: string;
  out?: string;
  resume?: boolean;
  until?: number;
  set: string[];
}

async function exists(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined)) !== undefined;
}

/** The prepared folder for the config's data source, made under out/data on first use. */
async function preparedData(cfg: ReproductionConfig, out: string): Promise<string> {
  const prepared = join(out, 'data', 'prepared');
  if (await exists(join(prepared, 'meta.json'))) return prepared;
  const src = cfg.data.source;
  let raw: string;
  if (src.kind === 'synthetic') {
    raw = join(out, 'data', 'raw');
    if (!(await exists(raw))) {
      console.error(
        `lea: writing the synthetic ${cfg.data.dataset} world (${src.scale}, seed ${src.seed}) to ${raw}`,
      );
      await synthesize({ format: cfg.data.dataset, scale: src.scale, seed: src.seed, out: raw });
    }
  } else if (src.kind === 'local') {
    raw = src.path;
  } else {
    throw new BadInputError(
      `--data is needed: the config's data source is a fetched manifest (${src.manifest}); pass a folder made by ` +
        '`lea data prepare`',
    );
  }
  console.error(`lea: preparing ${cfg.data.dataset} ${cfg.data.subject} from ${raw} into ${prepared}`);
  await prepareDataset({
    dataset: cfg.data.dataset,
    path: raw,
    subject: cfg.data.subject,
    out: prepared,
    testNormalisation: cfg.data.testNormalisation,
    ...(cfg.data.roiPatch ? { roiPatch: cfg.data.roiPatch } : {}),
  });
  return prepared;
}

/** step, loss, steps/s and ETA on one line: redrawn in place on a terminal, every few seconds otherwise. */
function progressLine(stream: NodeJS.WriteStream = process.stderr) {
  let last = 0;
  let drawn = false;
  return {
    update(p: TrainProgress, force = false): void {
      const now = Date.now();
      if (!force && now - last < (stream.isTTY ? 200 : 5000) && p.step !== p.iterations) return;
      last = now;
      const width = 20;
      const done = Math.round((p.step / p.iterations) * width);
      const rate =
        p.stepsPerSecond > 0
          ? ` ${p.stepsPerSecond.toFixed(2)} steps/s ETA ${formatSeconds(p.etaSeconds)}`
          : '';
      const line =
        `${p.stage} [${'#'.repeat(done).padEnd(width, '.')}] step ${p.step}/${p.iterations} loss ${p.loss.toPrecision(5)}` +
        `${p.lr > 0 ? ` lr ${p.lr.toExponential(2)}` : ''}${rate}`;
      if (stream.isTTY) {
        stream.write(`\r\x1b[K${line}`);
        drawn = true;
      } else stream.write(`${line}\n`);
    },
    done(): void {
      if (drawn) stream.write('\n');
      drawn = false;
    },
  };
}

export function registerTrainCommand(program: Command): void {
  program
    .command('train')
    .description(
      'train one stage of a reproduction config outside Temporal (debugging), with a progress line',
    )
    .addArgument(new Argument('<stage>', 'stage to train').choices(STAGES))
    .requiredOption('--config <file>', 'reproduction config (YAML or JSON)')
    .option(
      '--data <dir>',
      "prepared data folder (`lea data prepare` output); default: prepare the config's source into OUT/data",
    )
    .option(
      '--out <dir>',
      'training folder: OUT/<stage>/ gets the model and checkpoints (default .lea/train/<config name>)',
      outputFolder,
    )
    .option('--resume', "continue from the stage's latest checkpoint in OUT, if there is one")
    .option(
      '--until <step>',
      'stop after this step, with a checkpoint (the schedule still spans all iterations)',
      positiveInt,
    )
    .option('--set <key=value...>', 'override a config field (repeatable)', [])
    .action(async (stageArg: string, flags: TrainFlags) => {
      const stage = stageArg as Stage;
      const cfg = loadExperimentConfig(flags.config, flags.set);
      if (cfg.pipeline !== 'reproduction') {
        throw new BadInputError(
          `--config ${flags.config} is a '${cfg.pipeline}' pipeline config; lea train needs pipeline: reproduction`,
        );
      }
      const out = resolve(flags.out ?? join('.lea', 'train', cfg.name));
      if (flags.data !== undefined && !(await exists(join(flags.data, 'meta.json')))) {
        throw new BadInputError(`--data ${flags.data} is not a prepared data folder (no meta.json)`);
      }
      const dataDir = flags.data ?? (await preparedData(cfg, out));
      await initCompute();
      const bar = progressLine();
      const result = await runStage(stage, cfg, {
        dataDir,
        outDir: out,
        resume: flags.resume === true,
        ...(flags.until !== undefined ? { until: flags.until } : {}),
        onProgress: (p) => bar.update(p),
        onCheckpoint: (ref) => {
          bar.done();
          console.error(`lea: checkpoint at step ${ref.step}: ${ref.location}`);
        },
        onNotice: (message) => {
          bar.done();
          console.error(`lea: ${message}`);
        },
      });
      bar.done();
      const t = result.training;
      if (t) {
        const from = t.resumedFrom ? `resumed at step ${t.startStep}` : 'from scratch';
        const losses =
          t.losses.length > 0
            ? `, loss ${t.losses[0]?.toPrecision(5)} -> ${t.losses[t.losses.length - 1]?.toPrecision(5)}`
            : '';
        const perStep =
          t.losses.length > 0 ? ` (${((1000 * t.seconds) / t.losses.length).toFixed(1)} ms/step)` : '';
        console.log(
          `${stage}: ${t.step - t.startStep} steps ${from} to step ${t.step} in ${t.seconds.toFixed(1)} s${perStep}${losses}; ${result.parameters} parameters; wrote ${result.modelPath}`,
        );
      } else if (result.kmeans) {
        const h = result.kmeans;
        console.log(
          `${stage}: k-means, quantisation MSE ${h[0]?.toPrecision(5)} -> ${h[h.length - 1]?.toPrecision(5)} over ${h.length - 1} iterations; wrote ${result.modelPath}`,
        );
      }
    });
}
