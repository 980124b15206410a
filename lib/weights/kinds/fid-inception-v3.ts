/**
 * torch-fidelity's FeatureExtractorInceptionV3 weights (pt_inception-2015-12-05, i.e.
 * weights-inception-2015-12-05-6726825d.pth: a torch.save of its state dict), the network torchmetrics'
 * FrechetInceptionDistance runs. Imported into lib/models/inception-v3.ts: every BasicConv2d's conv and
 * BatchNorm; `fc` (the 1008-way classifier) and the BatchNorms' num_batches_tracked are reported unused.
 */
import {
  BN_PARAMS,
  INCEPTION_BN_EPS,
  INCEPTION_CLASSES,
  INCEPTION_CONVS,
  INCEPTION_SIZE,
  InceptionV3,
} from '../../models/inception-v3.js';
import type { NdArray } from '../../tensors/ndarray.js';
import { convFromTorch } from '../layout.js';
import type { ImportedNetwork, Network, WeightKind } from '../kind.js';
import type { CheckpointSource } from '../source.js';
import { readMapped, type Mapped } from './vit-common.js';

async function importInception(src: CheckpointSource): Promise<ImportedNetwork> {
  const plan: Mapped[] = [];
  for (const c of INCEPTION_CONVS) {
    const w = `${c.name}.conv.weight`;
    plan.push({ from: w, to: w, shape: [c.cout, c.cin, c.kh, c.kw], convert: convFromTorch });
    for (const p of BN_PARAMS)
      plan.push({ from: `${c.name}.bn.${p}`, to: `${c.name}.bn.${p}`, shape: [c.cout] });
  }
  const { tensors, unused } = await readMapped(
    src,
    plan,
    (n) => !n.startsWith('fc.') && !n.endsWith('.bn.num_batches_tracked'),
  );
  return {
    tensors,
    config: { imageSize: INCEPTION_SIZE, bnEps: INCEPTION_BN_EPS, features: [64, 2048] },
    unused,
    notes: {
      preprocessing:
        "uint8 → 299x299 bilinear in float32 (torchmetrics' default antialias=True, or torch-fidelity's TF1 resize), (x − 128)/128",
      features: "'64': mean of MaxPool_1 (FrechetInceptionDistance(feature=64)); '2048': mean of Mixed_7c",
      classifier: `fc (${INCEPTION_CLASSES} classes) not imported`,
    },
  };
}

function buildInception(tensors: Map<string, NdArray>): Network {
  const net = new InceptionV3(tensors, 'fid-inception-v3 artifact');
  return {
    outputs: {
      features: (images) => net.features(images, 64, 'antialias'),
      'features-tf1': (images) => net.features(images, 64, 'tf1'),
      pool: (images) => net.features(images, 2048),
    },
    dispose: () => net.dispose(),
  };
}

export const fidInceptionV3Kind: WeightKind = {
  name: 'fid-inception-v3',
  description:
    "torch-fidelity's InceptionV3 FID feature extractor (weights-inception-2015-12-05-6726825d.pth)",
  formats: ['torch-zip', 'safetensors'],
  options: [],
  mappingVersion: 1,
  importFrom: importInception,
  fullSize: { imageSize: INCEPTION_SIZE, bnEps: INCEPTION_BN_EPS, features: [64, 2048] },
  build: buildInception,
};
