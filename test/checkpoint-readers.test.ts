/**
 * The upstream checkpoint readers against files torch 2 and the msgpack package write (the oracle venv
 * generates them): every tensor's values are compared exactly with what torch/numpy hold; bad files
 * (a pickle calling os.system, a zip member escaping the archive, a truncated storage, a msgpack array of
 * the wrong size) must fail with a BadInputError naming the file and the tensor or global.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BadInputError } from '../lib/errors.js';
import { openCheckpoint } from '../lib/weights/open.js';
import type { CheckpointSource } from '../lib/weights/source.js';
import { runOracle } from './helpers/oracle.js';

interface Expected {
  dtype: string;
  shape: number[];
  values: number[];
}
type Expectations = Record<string, Record<string, Expected>>;

/** Python: `expect(name, state_dict)` records each tensor's dtype, shape and values in `out` for the test. */
const EXPECT = String.raw`
out = {}
def expect(name, sd):
    out[name] = {k: {'dtype': str(v.dtype).replace('torch.', ''), 'shape': list(v.shape),
                     'values': v.detach().float().reshape(-1).tolist() if v.dtype != torch.int64 else v.reshape(-1).tolist()}
                 for k, v in sd.items()}`;

const MAKE = String.raw`
import sys, os, io, json, pickle, zipfile, collections
import numpy as np, torch, msgpack
d = sys.argv[1]
torch.manual_seed(0)
${EXPECT}

a = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.5
sd = {'f32': a, 'f16': (a * 3).half(), 'bf16': (a * 7).bfloat16(), 'i64': torch.tensor([-3, 0, 2**40]),
      'flags': torch.tensor([True, False, True]), 'transposed': a.t(), 'shared_slice': a[1:, 2:],
      'param': torch.nn.Parameter(torch.linspace(-1, 1, 5)), 'scalar': torch.tensor(2.5)}
torch.save(sd, os.path.join(d, 'state.pth'))
expect('state', sd)

net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
torch.save(net.state_dict(), os.path.join(d, 'module.pth'))
expect('module', net.state_dict())

class TrainConfig:
    def __init__(self):
        self.patch_size = 16
        self.embed_dim = 1024
        self.mask_ratio = 0.75
        self.dataset = 'GOD'
        self.use_nature_img_loss = False
        self.lr_steps = [10, 20]
opt = torch.optim.AdamW(net.parameters())
net(torch.randn(4, 3)).sum().backward()
opt.step()
torch.save({'model': net.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3,
            'scaler': {'scale': 65536.0, '_growth_tracker': 0}, 'config': TrainConfig()},
           os.path.join(d, 'mindvis.pth'))
expect('mindvis', net.state_dict())

def ext(arr):
    return msgpack.ExtType(1, msgpack.packb((arr.shape, arr.dtype.name, arr.tobytes('C')), use_bin_type=True))
kernel = np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5.5
bias = np.array([0.5, -0.25], dtype=np.float16)
big = np.arange(10, dtype=np.int32) * 3
tree = {'params': {'encoder': {'Conv_0': {'kernel': ext(kernel), 'bias': ext(bias)},
                               'chunked': {'__msgpack_chunked_array__': True, 'shape': {'0': 2, '1': 5},
                                           'chunks': {'0': ext(big[:4]), '1': ext(big[4:])}}},
                   'step': msgpack.ExtType(3, msgpack.packb(((), 'int64', np.int64(7).tobytes()), use_bin_type=True))},
        'epoch': 12, 'note': 'flax'}
with open(os.path.join(d, 'flax.msgpack'), 'wb') as f:
    f.write(msgpack.packb(tree, use_bin_type=True))
out['flax'] = {'params/encoder/Conv_0/kernel': {'dtype': 'float32', 'shape': [2, 3, 4], 'values': kernel.reshape(-1).tolist()},
               'params/encoder/Conv_0/bias': {'dtype': 'float16', 'shape': [2], 'values': bias.astype(np.float32).tolist()},
               'params/encoder/chunked': {'dtype': 'int32', 'shape': [2, 5], 'values': big.tolist()},
               'params/step': {'dtype': 'int64', 'shape': [], 'values': [7]}}
bad = {'w': msgpack.ExtType(1, msgpack.packb(((2, 3), 'float32', b'\0' * 20), use_bin_type=True))}
with open(os.path.join(d, 'bad_size.msgpack'), 'wb') as f:
    f.write(msgpack.packb({'params': bad}, use_bin_type=True))

class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + os.path.join(d, 'pwned'),))
def torch_like_zip(name, members):
    with zipfile.ZipFile(os.path.join(d, name), 'w', zipfile.ZIP_STORED) as z:
        for n, b in members.items():
            z.writestr(n, b)
torch_like_zip('evil.pth', {'evil/data.pkl': pickle.dumps({'model': Evil(), 'epoch': 1}, protocol=2),
                            'evil/version': b'3\n'})
torch_like_zip('escape.pth', {'archive/data.pkl': pickle.dumps({}, protocol=2), '../evil': b'x'})
src = zipfile.ZipFile(os.path.join(d, 'state.pth'))
members = {i.filename: src.read(i.filename) for i in src.infolist()}
key = [n for n in members if n.endswith('/data/0')][0]
members[key] = members[key][:20]
torch_like_zip('truncated.pth', members)
from safetensors.torch import save_file
st = {'w16': (a * 3).half(), 'wb16': (a * 7).bfloat16(), 'w32': a.contiguous(), 'ids': torch.tensor([1, 2], dtype=torch.int64)}
save_file(st, os.path.join(d, 'model.safetensors'), metadata={'format': 'pt'})
with open(os.path.join(d, 'model.safetensors'), 'rb') as f:
    header = json.loads(f.read(int.from_bytes(f.read(8), 'little')))
expect('safetensors', {k: st[k] for k in header if k != '__metadata__'})
# the same file with byteorder 'big' and every storage byte-swapped by its element size
storage_cls = {}
class Peek(pickle.Unpickler):
    def find_class(self, module, name):
        return (lambda *args: None) if module == 'torch._utils' else super().find_class(module, name)
    def persistent_load(self, pid):
        storage_cls[pid[2]] = pid[1].__name__
big = {i.filename: src.read(i.filename) for i in src.infolist()}
prefix = key[:-len('data/0')]
Peek(io.BytesIO(big[prefix + 'data.pkl'])).load()
big[prefix + 'byteorder'] = b'big'
sizes = {'FloatStorage': 4, 'HalfStorage': 2, 'BFloat16Storage': 2, 'LongStorage': 8, 'BoolStorage': 1}
for k, cls in storage_cls.items():
    raw = np.frombuffer(big[prefix + 'data/' + k], dtype=np.uint8).reshape(-1, sizes[cls])
    big[prefix + 'data/' + k] = raw[:, ::-1].tobytes()
torch_like_zip('bigendian.pth', big)
with open(os.path.join(d, 'notes.txt'), 'w') as f:
    f.write('not a checkpoint')
print(json.dumps(out))
`;

let dir: string;
let expected: Expectations;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'lea-ckpt-'));
  expected = JSON.parse(runOracle(MAKE, [dir])) as Expectations;
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function withSource<T>(
  file: string,
  entry: string | undefined,
  fn: (s: CheckpointSource) => Promise<T>,
): Promise<T> {
  const src = await openCheckpoint(join(dir, file), entry === undefined ? {} : { entry });
  try {
    return await fn(src);
  } finally {
    await src.close();
  }
}

/** Every expected tensor, in file order, with exactly the oracle's values. */
async function assertTensors(src: CheckpointSource, want: Record<string, Expected>): Promise<void> {
  assert.deepEqual([...src.tensors.keys()], Object.keys(want));
  for (const [name, w] of Object.entries(want)) {
    const ref = src.tensors.get(name)!;
    assert.equal(ref.dtype, w.dtype, name);
    assert.deepEqual(ref.shape, w.shape, name);
    const arr = await ref.read();
    assert.deepEqual(arr.shape, w.shape, name);
    assert.deepEqual(Array.from(arr.data as ArrayLike<number | bigint>, Number), w.values, name);
    const widened = { float16: 'float32', bfloat16: 'float32' }[w.dtype as string] ?? w.dtype;
    assert.equal(arr.dtype, widened, name);
  }
}

async function rejects(file: string, entry: string | undefined, problem: RegExp): Promise<void> {
  await assert.rejects(
    () => withSource(file, entry, async () => undefined),
    (e: unknown) => {
      assert.ok(e instanceof BadInputError, String(e));
      assert.ok(e.message.includes(join(dir, file)), e.message);
      assert.match(e.message, problem);
      return true;
    },
  );
}

describe('torch.save zip checkpoints', () => {
  it('reads every dtype, views, shared storages and parameters exactly', async () => {
    await withSource('state.pth', undefined, async (src) => {
      assert.equal(src.format, 'torch-zip');
      await assertTensors(src, expected.state!);
      assert.deepEqual(src.extras, {});
    });
  });

  it("reads a big-endian file (byteorder 'big') to the same values", async () => {
    await withSource('bigendian.pth', undefined, (src) => assertTensors(src, expected.state!));
  });

  it("reads a module's state_dict (an OrderedDict carrying _metadata)", async () => {
    await withSource('module.pth', undefined, (src) => assertTensors(src, expected.module!));
  });

  it("MinD-Vis layout: entry 'model'; the config object is skipped and its fields become extras", async () => {
    await withSource('mindvis.pth', 'model', async (src) => {
      await assertTensors(src, expected.mindvis!);
      assert.deepEqual(src.extras, {
        epoch: 3,
        scaler: { scale: 65536, _growth_tracker: 0 },
        config: {
          patch_size: 16,
          embed_dim: 1024,
          mask_ratio: 0.75,
          dataset: 'GOD',
          use_nature_img_loss: false,
          lr_steps: [10, 20],
        },
      });
    });
    await rejects('mindvis.pth', undefined, /disallowed global __main__\.TrainConfig in the root object/);
    await rejects('mindvis.pth', 'state_dict', /no entry 'state_dict'.*model, optimizer, epoch/);
  });
});

describe('Flax msgpack checkpoints', () => {
  it('reads nested ndarray leaves, a chunked array and a numpy scalar by their / paths', async () => {
    await withSource('flax.msgpack', undefined, async (src) => {
      assert.equal(src.format, 'flax-msgpack');
      await assertTensors(src, expected.flax!);
      assert.deepEqual(src.extras, { epoch: 12, note: 'flax' });
    });
  });
});

describe('safetensors checkpoints', () => {
  it('reads F16, BF16, F32 and I64 tensors lazily, metadata as extras', async () => {
    await withSource('model.safetensors', undefined, async (src) => {
      assert.equal(src.format, 'safetensors');
      await assertTensors(src, expected.safetensors!);
      assert.deepEqual(src.extras, { format: 'pt' });
    });
  });
});

describe('bad checkpoint files', () => {
  it('a pickle calling os.system inside the needed entry is refused without running it', async () => {
    await rejects(
      'evil.pth',
      'model',
      /pickle rejected at byte \d+: disallowed global posix\.system in entry 'model'/,
    );
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(join(dir, 'pwned')), false);
  });

  it('a zip member escaping the archive', async () => {
    await rejects('escape.pth', undefined, /zip member '\.\.\/evil' is not a plain relative path/);
  });

  it('a storage shorter than its tensor', async () => {
    await rejects('truncated.pth', undefined, /tensor 'f32'.*truncated storage/);
  });

  it('a msgpack array whose bytes do not match its shape', async () => {
    await rejects(
      'bad_size.msgpack',
      undefined,
      /tensor 'params\/w'.*20 data bytes but shape \[2, 3\] float32 needs 24/,
    );
  });

  it('a file of no known format', async () => {
    await rejects('notes.txt', undefined, /not a checkpoint this reader knows/);
  });
});

const MAKE_LEGACY = String.raw`
import sys, os, json, importlib.util
import torch
d = sys.argv[1]
torch.manual_seed(0)
${EXPECT}
def legacy(obj, name, **kw):
    torch.save(obj, os.path.join(d, name), _use_new_zipfile_serialization=False, **kw)

a = torch.arange(12, dtype=torch.float32).reshape(3, 4) / 8 - 0.5
sd = {'f32': a, 'f16': (a * 3).half(), 'i64': torch.tensor([-3, 0, 2**40]), 'i32': torch.tensor([7, -7], dtype=torch.int32),
      'flags': torch.tensor([True, False, True]), 'transposed': a.t(), 'shared_slice': a[1:, 2:],
      'param': torch.nn.Parameter(torch.linspace(-1, 1, 5)), 'scalar': torch.tensor(2.5)}
legacy(sd, 'legacy.pth')
legacy(sd, 'legacy_p4.pth', pickle_protocol=4)
expect('legacy', sd)

class TrainConfig:
    def __init__(self):
        self.patch_size = 16
        self.dataset = 'GOD'
class Evil:
    def __reduce__(self):
        return (os.system, ('touch ' + os.path.join(d, 'pwned-legacy'),))
net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))
legacy({'model': net.state_dict(), 'epoch': 7, 'config': TrainConfig(), 'hook': Evil()}, 'legacy_entry.pth')
expect('legacy_entry', net.state_dict())
legacy({'w': torch.zeros(2), 'hook': Evil()}, 'legacy_evil.pth')

legacy({'w': a, 'blob': list(range(300000))}, 'legacy_big_head.pth')
expect('legacy_big_head', {'w': a})
legacy({'w': torch.arange(100, dtype=torch.float32)}, 'legacy_w.pth')
with open(os.path.join(d, 'legacy_w.pth'), 'rb') as f:
    whole = f.read()
with open(os.path.join(d, 'legacy_truncated.pth'), 'wb') as f:
    f.write(whole[:-10])
with open(os.path.join(d, 'legacy_no_data.pth'), 'wb') as f:
    f.write(whole[:-(8 + 400)])

alex = os.path.join(importlib.util.find_spec('lpips').submodule_search_locations[0], 'weights', 'v0.1', 'alex.pth')
out['alex_path'] = alex
expect('alex', torch.load(alex, map_location='cpu', weights_only=True))
print(json.dumps(out))
`;

describe('torch.save legacy (pre-1.6, non-zip) checkpoints', () => {
  let legacy: Expectations & { alex_path?: string };
  before(() => {
    legacy = JSON.parse(runOracle(MAKE_LEGACY, [dir])) as typeof legacy;
  });

  it('reads float32/float16/int64/int32/bool tensors, shared-storage views and strided views exactly', async () => {
    for (const file of ['legacy.pth', 'legacy_p4.pth']) {
      await withSource(file, undefined, async (src) => {
        assert.equal(src.format, 'torch-legacy', file);
        await assertTensors(src, legacy.legacy!);
        assert.deepEqual(src.extras, {});
      });
    }
  });

  it("entry 'model': a config object's fields become extras; the root with a foreign global is refused", async () => {
    await withSource('legacy_entry.pth', 'model', async (src) => {
      await assertTensors(src, legacy.legacy_entry!);
      assert.deepEqual(src.extras, { epoch: 7, config: { patch_size: 16, dataset: 'GOD' } });
    });
    await rejects(
      'legacy_entry.pth',
      undefined,
      /object pickle: pickle rejected at byte \d+: disallowed global __main__\.TrainConfig in the root object/,
    );
  });

  it('an object pickle longer than the first read (1 MiB) is read on', async () => {
    await withSource('legacy_big_head.pth', undefined, async (src) => {
      await assertTensors(src, legacy.legacy_big_head!);
      const blob = src.extras.blob as number[];
      assert.equal(blob.length, 300000);
      assert.equal(blob[299999], 299999);
    });
  });

  it('a global outside the allow-list beside the tensors is refused without running it', async () => {
    await rejects('legacy_evil.pth', undefined, /disallowed global posix\.system in the root object/);
    const { existsSync } = await import('node:fs');
    assert.equal(existsSync(join(dir, 'pwned-legacy')), false);
  });

  it('a truncated data section names the tensor', async () => {
    await rejects('legacy_truncated.pth', undefined, /tensor 'w'.*truncated storage/);
    await rejects('legacy_no_data.pth', undefined, /tensor 'w'.*truncated data section/);
    await rejects('legacy_no_data.pth', 'model', /no entry 'model'/);
  });

  it("lpips's shipped weights/v0.1/alex.pth (Python 2 pickle) reads as torch.load gives it", async () => {
    const src = await openCheckpoint(legacy.alex_path!);
    try {
      assert.equal(src.format, 'torch-legacy');
      assert.deepEqual(
        [...src.tensors.keys()],
        [0, 1, 2, 3, 4].map((k) => `lin${k}.model.1.weight`),
      );
      await assertTensors(src, legacy.alex!);
    } finally {
      await src.close();
    }
  });
});
