"""Random MaskGIT networks in the parameter trees of MaskGIT's Flax modules, written as flax.serialization
writes them (msgpack, arrays as ExtType 1 = (shape, dtype name, C-order bytes)). Names and layouts follow
google-research/maskgit (vqgan_tokenizer.py, maskgit_transformer.py); sizes are the caller's.
Usage: maskgit_flax.py OUT_DIR SIZES_JSON writes OUT_DIR/tokenizer.msgpack and OUT_DIR/transformer.msgpack.

vqgan_forward and transformer_logits re-state those modules' forward passes in PyTorch float64 (written for
these tests from the modules' structure, spec 2.4-2.5), under either numerics: maskgit-flax, the epsilons and
GELU MaskGIT's Flax code runs with (nn.GroupNorm's default 1e-6, embeddings_ln 1e-12, jax.nn.gelu's tanh form),
or lea-port, LEA's PyTorch port (nn.GroupNorm's and nn.LayerNorm's 1e-5, nn.GELU's exact form). Both use
1e-12 in the transformer layers' LayerNorms, as both codes do."""
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


NUMERICS = {
    'maskgit-flax': {'gn_eps': 1e-6, 'embed_ln_eps': 1e-12, 'gelu': 'tanh'},
    'lea-port': {'gn_eps': 1e-5, 'embed_ln_eps': 1e-5, 'gelu': 'none'},
}
LAYER_LN_EPS = 1e-12


def vqgan_forward(vq, images, mult, nrb, groups, numerics):
    """uint8 images [N, H, W, 3] -> (nearest code ids [N, tokens], relative gap of the two nearest codes,
    unclamped reconstruction [N, H, W, 3]) through the VQVAE's encoder, quantizer and decoder."""
    import torch
    import torch.nn.functional as F
    T = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
    enc, dec, codebook = vq['encoder'], vq['decoder'], T(vq['quantizer']['codebook'])
    eps = NUMERICS[numerics]['gn_eps']

    def conv(x, p):  # x NCHW; Flax kernels [kh, kw, in, out]; 'SAME' padding for odd kernels
        w = T(p['kernel']).permute(3, 2, 0, 1)
        return F.conv2d(x, w, T(p['bias']) if 'bias' in p else None, padding=w.shape[-1] // 2)

    def gn(x, p):
        return F.group_norm(x, groups, T(p['scale']), T(p['bias']), eps=eps)

    def res(x, p):
        h = conv(F.silu(gn(x, p['GroupNorm_0'])), p['Conv_0'])
        h = conv(F.silu(gn(h, p['GroupNorm_1'])), p['Conv_1'])
        return h + (conv(h, p['Conv_2']) if 'Conv_2' in p else x)  # MaskGIT's skip: 1x1 conv of the branch

    h, k = conv(T(images).permute(0, 3, 1, 2) / 255, enc['Conv_0']), 0
    for i in range(len(mult)):
        for _ in range(nrb):
            h = res(h, enc[f'ResBlock_{k}']); k += 1
        if i < len(mult) - 1:
            h = F.avg_pool2d(h, 2)
    for _ in range(nrb):
        h = res(h, enc[f'ResBlock_{k}']); k += 1
    z = conv(F.silu(gn(h, enc['GroupNorm_0'])), enc['Conv_1'])
    n, lat, gh, gw = z.shape
    z = z.permute(0, 2, 3, 1).reshape(-1, lat)
    d = (z ** 2).sum(1, keepdim=True) - 2 * z @ codebook.T + (codebook ** 2).sum(1)
    ids = d.argmin(1)
    top2 = d.topk(2, 1, largest=False).values
    gap = ((top2[:, 1] - top2[:, 0]) / top2[:, 0].abs()).min().item()

    h, k, c = conv(codebook[ids].reshape(n, gh, gw, lat).permute(0, 3, 1, 2), dec['Conv_0']), 0, 1
    for _ in range(nrb):
        h = res(h, dec[f'ResBlock_{k}']); k += 1
    for i in reversed(range(len(mult))):
        for _ in range(nrb):
            h = res(h, dec[f'ResBlock_{k}']); k += 1
        if i > 0:
            h = conv(F.interpolate(h, scale_factor=2, mode='nearest'), dec[f'Conv_{c}']); c += 1
    raw = conv(F.silu(gn(h, dec['GroupNorm_0'])), dec[f'Conv_{c}']).permute(0, 2, 3, 1)
    return ids.reshape(n, -1).int().numpy(), gap, raw.numpy()


def transformer_logits(tree, emb_w, emb_b, features, tokens, heads, codes, numerics):
    """Logits [B, L, codes] of the bidirectional transformer for token ids [B, L] (the mask id included),
    conditioned as LEA conditions it: a feature vector through decoder_embed (emb_w [F, D], emb_b [D]) in front
    of the token embeddings, position 0."""
    import math
    import torch
    import torch.nn.functional as F
    T = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))
    num = NUMERICS[numerics]
    E = T(tree['Embed_0']['word_embeddings']['embedding'])
    d = E.shape[1]

    def ln(x, p, eps):
        return F.layer_norm(x, (d,), T(p['scale']), T(p['bias']), eps)

    def dense(x, p):
        return x @ T(p['kernel']) + T(p['bias'])

    def gelu(x):
        return F.gelu(x, approximate=num['gelu'])

    cond = T(features) @ T(emb_w) + T(emb_b)
    h = torch.cat([cond[:, None], E[torch.from_numpy(np.asarray(tokens)).long()]], 1)
    h = ln(h + T(tree['Embed_0']['position_embeddings']['embedding']), tree['Embed_0']['embeddings_ln'], num['embed_ln_eps'])
    i = 0
    while f'TransformerLayer_{i}' in tree:
        lay = tree[f'TransformerLayer_{i}']; att = lay['Attention_0']['self_attention']
        q, k, v = (torch.einsum('btd,dhk->bhtk', h, T(att[p]['kernel'])) + T(att[p]['bias'])[None, :, None]
                   for p in ['query', 'key', 'value'])
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1) @ v
        o = torch.einsum('bhtk,hkd->btd', a, T(att['out']['kernel'])) + T(att['out']['bias'])
        h = ln(h + o, lay['Attention_0']['attention_output_ln'], LAYER_LN_EPS)
        m = dense(gelu(dense(h, lay['Mlp_0']['intermediate_output'])), lay['Mlp_0']['layer_output'])
        h = ln(h + m, lay['Mlp_0']['layer_output_ln'], LAYER_LN_EPS)
        i += 1
    mlm = tree['MlmLayer_0']
    y = ln(gelu(dense(h, mlm['mlm_dense'])), mlm['mlm_ln'], LAYER_LN_EPS)
    return (y @ E.T + T(mlm['mlm_bias']['bias']))[:, 1:, :codes].numpy()


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
