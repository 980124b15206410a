"""Random MaskGIT networks in the parameter trees of MaskGIT's Flax modules, written as flax.serialization
writes them (msgpack, arrays as ExtType 1 = (shape, dtype name, C-order bytes)). Names and layouts follow
google-research/maskgit (vqgan_tokenizer.py, maskgit_transformer.py); sizes are the caller's.
Usage: maskgit_flax.py OUT_DIR SIZES_JSON writes OUT_DIR/tokenizer.msgpack and OUT_DIR/transformer.msgpack."""
import json, math, sys
import msgpack
import numpy as np


def f32(a):
    return np.asarray(a, dtype=np.float32)


class Tree:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def normal(self, *shape, std=1.0):
        return f32(self.rng.standard_normal(shape) * std)

    def conv(self, k, cin, cout, bias, std=None):
        p = {'kernel': self.normal(k, k, cin, cout, std=std or 1 / math.sqrt(k * k * cin))}
        if bias:
            p['bias'] = self.normal(cout, std=0.1)
        return p

    def gn(self, c):
        return {'scale': f32(1 + self.rng.standard_normal(c) * 0.1), 'bias': self.normal(c, std=0.1)}

    def res(self, cin, cout):
        p = {'GroupNorm_0': self.gn(cin), 'Conv_0': self.conv(3, cin, cout, False),
             'GroupNorm_1': self.gn(cout), 'Conv_1': self.conv(3, cout, cout, False)}
        if cin != cout:
            p['Conv_2'] = self.conv(1, cout, cout, False)
        return p

    def vqgan(self, ch, mult, nrb, lat, codes):
        """VQVAE: encoder ResBlocks in call order (levels, then the middle, as many as num_res_blocks)."""
        enc, dec, k = {'Conv_0': self.conv(3, 3, ch, False)}, {}, 0
        cin = ch
        for m in mult:
            for _ in range(nrb):
                enc[f'ResBlock_{k}'] = self.res(cin, ch * m); cin = ch * m; k += 1
        for _ in range(nrb):
            enc[f'ResBlock_{k}'] = self.res(cin, cin); k += 1
        enc['GroupNorm_0'] = self.gn(cin)
        enc['Conv_1'] = self.conv(1, cin, lat, True)
        dec['Conv_0'] = self.conv(3, lat, cin, True)
        k, c = 0, 1
        for _ in range(nrb):
            dec[f'ResBlock_{k}'] = self.res(cin, cin); k += 1
        for i in reversed(range(len(mult))):
            for _ in range(nrb):
                dec[f'ResBlock_{k}'] = self.res(cin, ch * mult[i]); cin = ch * mult[i]; k += 1
            if i > 0:
                dec[f'Conv_{c}'] = self.conv(3, cin, cin, True); c += 1
        dec['GroupNorm_0'] = self.gn(cin)
        dec[f'Conv_{c}'] = self.conv(3, cin, 3, True, std=0.3 / math.sqrt(9 * cin))
        dec[f'Conv_{c}']['bias'] = f32(0.5 + self.rng.standard_normal(3) * 0.05)  # outputs mostly in [0, 1]
        return {'encoder': enc, 'decoder': dec, 'quantizer': {'codebook': self.normal(codes, lat, std=0.5)}}

    def transformer(self, codes, slots, d, heads, ff, depth, length):
        """Transformer: Embed_0, TransformerLayer_i (attention kernels [D, H, D/H], out [H, D/H, D]), MlmLayer_0."""
        rows, hd = codes + slots + 1, d // heads
        dense = lambda din, dout: {'kernel': self.normal(din, dout, std=1 / math.sqrt(din)), 'bias': self.normal(dout, std=0.1)}
        ln = lambda: {'scale': f32(1 + self.rng.standard_normal(d) * 0.1), 'bias': self.normal(d, std=0.1)}
        tree = {'Embed_0': {'word_embeddings': {'embedding': self.normal(rows, d, std=0.3)},
                            'position_embeddings': {'embedding': self.normal(length + 1, d, std=0.3)},
                            'embeddings_ln': ln()}}
        for i in range(depth):
            att = {p: {'kernel': self.normal(d, heads, hd, std=1 / math.sqrt(d)), 'bias': self.normal(heads, hd, std=0.1)}
                   for p in ['query', 'key', 'value']}
            att['out'] = {'kernel': self.normal(heads, hd, d, std=1 / math.sqrt(d)), 'bias': self.normal(d, std=0.1)}
            tree[f'TransformerLayer_{i}'] = {
                'Attention_0': {'self_attention': att, 'attention_output_ln': ln()},
                'Mlp_0': {'intermediate_output': dense(d, ff), 'layer_output': dense(ff, d), 'layer_output_ln': ln()}}
        tree['MlmLayer_0'] = {'mlm_dense': dense(d, d), 'mlm_ln': ln(), 'mlm_bias': {'bias': self.normal(rows, std=0.1)}}
        return tree


def write_flax(tree, path):
    """flax.serialization.to_bytes({'params': tree})."""
    def ext(obj):
        if isinstance(obj, np.ndarray):
            return msgpack.ExtType(1, msgpack.packb((obj.shape, obj.dtype.name, obj.tobytes('C')), use_bin_type=True))
        raise TypeError(type(obj))
    with open(path, 'wb') as fh:
        fh.write(msgpack.packb({'params': tree}, default=ext, strict_types=True))


def read_flax(path):
    """flax.serialization.from_bytes's msgpack: ExtType 1 arrays back as numpy arrays."""
    def ext(code, data):
        if code != 1:
            return msgpack.ExtType(code, data)
        shape, dtype, raw = msgpack.unpackb(data)
        return np.frombuffer(raw, dtype=dtype).reshape(shape)
    with open(path, 'rb') as fh:
        return msgpack.unpackb(fh.read(), ext_hook=ext)


if __name__ == '__main__':
    out, sizes = sys.argv[1], json.loads(sys.argv[2])
    t = Tree(sizes.get('seed', 0))
    v, m = sizes['tokenizer'], sizes['transformer']
    write_flax(t.vqgan(v['ch'], v['mult'], v['nrb'], v['lat'], v['codes']), f'{out}/tokenizer.msgpack')
    write_flax(t.transformer(v['codes'], m['slots'], m['d'], m['heads'], m['ff'], m['depth'], m['length']),
               f'{out}/transformer.msgpack')
