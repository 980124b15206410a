/**
 * The lpips package's linear heads for AlexNet, v0.1 (lpips/weights/v0.1/alex.pth, shipped in its wheel): one
 * bias-free 1x1 conv per AlexNet tap, `lin{k}.model.1.weight` [1, c_k, 1, 1] (model.0 is the Dropout).
 * Stored in the project's conv layout [1, 1, c_k, 1]. The backbone is the torchvision-alexnet kind; other
 * tensors (a whole LPIPS module's state dict also holds scaling_layer.* and net.*) are reported unused.
 * The wheel's alex.pth is torch.save's legacy (pre-zip) format; openCheckpoint reads it as is.
 */
import { ALEXNET_CHANNELS } from '../../models/alexnet.js';
import { convFromTorch } from '../layout.js';
import type { ImportedNetwork, WeightKind } from '../kind.js';
import type { CheckpointSource } from '../source.js';
import { readMapped, type Mapped } from './vit-common.js';

async function importLpipsAlex(src: CheckpointSource): Promise<ImportedNetwork> {
  const plan: Mapped[] = ALEXNET_CHANNELS.map((c, k) => ({
    from: `lin${k}.model.1.weight`,
    to: `lin${k}.model.1.weight`,
    shape: [1, c, 1, 1],
    convert: convFromTorch,
  }));
  const { tensors, unused } = await readMapped(src, plan, (n) => n.startsWith('lin'));
  return {
    tensors,
    config: { net: 'alex', version: '0.1', channels: [...ALEXNET_CHANNELS] },
    unused,
    notes: {
      input: 'images in [-1, 1]; ScalingLayer shift [-0.030, -0.088, -0.188], scale [0.458, 0.448, 0.450]',
      normalize: 'each tap divided by its channel L2 norm + 1e-10',
    },
  };
}

export const lpipsAlexKind: WeightKind = {
  name: 'lpips-alex-v0.1',
  description: "lpips 0.1's AlexNet linear heads (lpips/weights/v0.1/alex.pth)",
  formats: ['torch-zip', 'safetensors'],
  options: [],
  mappingVersion: 1,
  importFrom: importLpipsAlex,
  fullSize: { net: 'alex', version: '0.1', channels: [...ALEXNET_CHANNELS] },
};
