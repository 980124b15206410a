/**
 * torchvision's `alexnet` ImageNet classifier (a torch.save of its state dict, e.g. alexnet-owt-7be5be79.pth),
 * imported for LPIPS: only `features.*` (lib/models/alexnet.ts); the classifier is reported unused.
 */
import { ALEXNET_CHANNELS, alexnetParamShapes } from '../../models/alexnet.js';
import { convFromTorch } from '../layout.js';
import type { ImportedNetwork, WeightKind } from '../kind.js';
import type { CheckpointSource } from '../source.js';
import { readMapped, type Mapped } from './vit-common.js';

async function importAlexnet(src: CheckpointSource): Promise<ImportedNetwork> {
  const plan: Mapped[] = [...alexnetParamShapes()].map(([name, shape]) => ({
    from: name,
    to: name,
    // project [kh, kw, in, out] ← torch [out, in, kh, kw]; biases as stored
    shape: shape.length === 4 ? [shape[3]!, shape[2]!, shape[0]!, shape[1]!] : shape,
    convert: shape.length === 4 ? convFromTorch : undefined,
  }));
  const { tensors, unused } = await readMapped(src, plan, (n) => n.startsWith('features.'));
  return {
    tensors,
    config: { channels: [...ALEXNET_CHANNELS] },
    unused,
    notes: { output: 'ReLU outputs after features.1, .4, .7, .9, .11 (the taps LPIPS compares)' },
  };
}

export const torchvisionAlexnetKind: WeightKind = {
  name: 'torchvision-alexnet',
  description: 'torchvision alexnet ImageNet classifier state dict (features only, for LPIPS)',
  formats: ['torch-zip', 'safetensors'],
  options: [],
  mappingVersion: 1,
  importFrom: importAlexnet,
  fullSize: { channels: [...ALEXNET_CHANNELS] },
};
