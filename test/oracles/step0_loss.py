"""Step-0 training losses of the two imported initialisations, restated in PyTorch (float64) from the spec:
the MaskGIT transformer's label-smoothed cross-entropy on masked positions (section 2.5, LEA's epsilons and exact
GELU) and the fMRI autoencoder's reconstruction MSE on clean input (section 2.1) after MinD-Vis's non-strict
transfer of the MAE. The parameters the imports do not cover come from the lea side's own initialisation, as
safetensors in the project's layout (Linear [in, out], Conv1d [k, in, out]).
  step0_loss.py inputs OUT SIZES_JSON   writes OUT/transformer.msgpack (a random MaskGIT transformer as Flax
                                        writes it), OUT/tokens.npy [B, L], OUT/features.npy [B, F], OUT/fmri.npy [B, K]
  step0_loss.py maskgit OUT SIZES_JSON  reads those, the masking OUT/masked.npy (flat positions b*L + i) and
                                        OUT/maskgit_own.safetensors (decoder_embed); prints {"loss"}
  step0_loss.py ae OUT SIZES_JSON       reads OUT/fmri.npy, OUT/fmri_encoder.pth (mindvis_mae.py) and
                                        OUT/ae_own.safetensors; prints {"loss", "own": the autoencoder tensors the
                                        transfer left, "unused": the MAE tensors the autoencoder has no name for}
SIZES_JSON: {"seed", "batch", "maskgit": MaskGitConfig, "ae": FmriAeConfig} (lib/models)."""
import json, math, sys
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from safetensors.numpy import load_file
from maskgit_flax import Tree, f32, read_flax, write_flax

mode, out, sizes = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
mg, ac, B = sizes['maskgit'], sizes['ae'], sizes['batch']
torch.set_default_dtype(torch.float64)
T = lambda a: torch.from_numpy(np.asarray(a, dtype=np.float64))

if mode == 'inputs':
    t = Tree(sizes['seed'])
    tree = t.transformer(mg['codes'], mg['classSlots'], mg['width'], mg['heads'], mg['mlpHidden'], mg['depth'], mg['length'])
    write_flax(tree, f'{out}/transformer.msgpack')
    np.save(f'{out}/tokens.npy', t.rng.integers(0, mg['codes'], (B, mg['length'])).astype(np.int32))
    feats = t.normal(B, mg['featureDim'])
    np.save(f'{out}/features.npy', f32(feats / np.linalg.norm(feats, axis=1, keepdims=True)))  # CLIP's are L2-normalised
    # rows of small norm: at step 0 the reconstruction is small, and mean(x^2) would otherwise swamp it in the loss
    np.save(f'{out}/fmri.npy', t.normal(B, sum(ac['roiSizes']), std=0.1))
    sys.exit(0)


def maskgit_loss():
    tree = read_flax(f'{out}/transformer.msgpack')['params']
    own = load_file(f'{out}/maskgit_own.safetensors')  # LEA's decoder_embed, new in LEA: [F, D]
    D, codes, eps = mg['width'], mg['codes'], mg['labelSmoothing']
    E = T(tree['Embed_0']['word_embeddings']['embedding'])
    tokens = torch.from_numpy(np.load(f'{out}/tokens.npy')).long().reshape(-1)
    masked = torch.from_numpy(np.load(f'{out}/masked.npy')).long()
    ids = tokens.clone()
    ids[masked] = E.shape[0] - 1  # MaskGIT's mask id -1: the table's last row
    ln = lambda x, p, e: F.layer_norm(x, (D,), T(p['scale']), T(p['bias']), e)
    lin = lambda x, p: x @ T(p['kernel']) + T(p['bias'])
    cond = T(np.load(f'{out}/features.npy')) @ T(own['decoder_embed.weight']) + T(own['decoder_embed.bias'])
    h = torch.cat([cond[:, None], E[ids.reshape(B, -1)]], 1) + T(tree['Embed_0']['position_embeddings']['embedding'])
    h = ln(h, tree['Embed_0']['embeddings_ln'], 1e-5)
    for i in range(mg['depth']):  # post-LN BERT blocks
        lay = tree[f'TransformerLayer_{i}']; att = lay['Attention_0']['self_attention']
        q, k, v = (torch.einsum('btd,dhk->bhtk', h, T(att[p]['kernel'])) + T(att[p]['bias'])[None, :, None]
                   for p in ['query', 'key', 'value'])
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(D // mg['heads']), -1) @ v
        h = ln(h + torch.einsum('bhtk,hkd->btd', a, T(att['out']['kernel'])) + T(att['out']['bias']),
               lay['Attention_0']['attention_output_ln'], 1e-12)
        m = lin(F.gelu(lin(h, lay['Mlp_0']['intermediate_output'])), lay['Mlp_0']['layer_output'])
        h = ln(h + m, lay['Mlp_0']['layer_output_ln'], 1e-12)
    mlm = tree['MlmLayer_0']
    y = ln(F.gelu(lin(h, mlm['mlm_dense'])), mlm['mlm_ln'], 1e-12)
    logits = (y @ E.T + T(mlm['mlm_bias']['bias']))[:, 1:, :codes].reshape(-1, codes)
    return F.cross_entropy(logits[masked], tokens[masked], label_smoothing=eps).item()


def sincos(dim, n):  # [1, n + 1, dim], the CLS row zero
    omega = 1.0 / 10000 ** (np.arange(dim // 2) / (dim / 2.0))
    pos = np.outer(np.arange(n), omega)
    return T(np.concatenate([np.zeros([1, dim]), np.concatenate([np.sin(pos), np.cos(pos)], 1)], 0)[None])


class Attention(nn.Module):
    def __init__(s, d, h):
        super().__init__(); s.h = h; s.qkv = nn.Linear(d, 3 * d); s.proj = nn.Linear(d, d)
    def forward(s, x):
        b, n, d = x.shape
        q, k, v = s.qkv(x).reshape(b, n, 3, s.h, d // s.h).permute(2, 0, 3, 1, 4)
        return s.proj((torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // s.h), -1) @ v).transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    def __init__(s, d, f):
        super().__init__(); s.fc1 = nn.Linear(d, f); s.fc2 = nn.Linear(f, d)
    def forward(s, x): return s.fc2(F.gelu(s.fc1(x)))


class Block(nn.Module):  # timm's pre-LN ViT block, qkv bias
    def __init__(s, d, h, ratio, eps):
        super().__init__()
        s.norm1 = nn.LayerNorm(d, eps=eps); s.attn = Attention(d, h)
        s.norm2 = nn.LayerNorm(d, eps=eps); s.mlp = Mlp(d, int(d * ratio))
    def forward(s, x):
        x = x + s.attn(s.norm1(x)); return x + s.mlp(s.norm2(x))


class FmriAutoencoder(nn.Module):  # LEA's fMRI_Autoencoder as spec 2.1 describes it, its module names
    def __init__(s):
        super().__init__()
        rois, t, d, dd, eps = ac['roiSizes'], ac['tokensPerRoi'], ac['width'], ac['decoderWidth'], ac['eps']
        s.rois, s.t, s.n = rois, t, len(rois) * t
        s.patch_embed = nn.Module()
        s.patch_embed.layers = nn.ModuleList(nn.Sequential(nn.Conv1d(1, t, 3, padding=1), nn.Linear(n, d)) for n in rois)
        s.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        s.blocks = nn.ModuleList(Block(d, ac['heads'], ac['mlpRatio'], eps) for _ in range(ac['depth']))
        s.norm = nn.LayerNorm(d, eps=eps)
        s.pred = nn.Linear(d, ac['latent'])
        s.decoder_embed = nn.Linear(ac['latent'], dd)
        s.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        s.decoder_blocks = nn.ModuleList(Block(dd, ac['decoderHeads'], ac['mlpRatio'], eps) for _ in range(ac['decoderDepth']))
        s.decoder_norm = nn.LayerNorm(dd, eps=eps)
        s.channel_mapper = nn.ModuleList(nn.Sequential(nn.Linear(dd, n)) for n in rois)
        s.decoder_pred = nn.Conv1d(t, 1, 3, padding=1)  # shared by every ROI
        s.pos, s.decoder_pos = sincos(d, s.n), sincos(dd, s.n)  # fixed: plain tensors, outside the state dict
    def forward(s, x):  # [B, K] -> [B, K]
        b = x.shape[0]
        parts = torch.split(x[:, None], s.rois, -1)  # ROI i: [B, 1, n_i] -> conv [B, T, n_i] -> linear [B, T, D]
        h = torch.cat([s.cls_token.expand(b, -1, -1)] + [l(p) for l, p in zip(s.patch_embed.layers, parts)], 1) + s.pos
        for blk in s.blocks: h = blk(h)
        z = s.pred(s.norm(h)[:, 0])
        g = torch.cat([s.decoder_embed(z)[:, None], s.mask_token.expand(b, s.n, -1)], 1) + s.decoder_pos
        for blk in s.decoder_blocks: g = blk(g)
        runs = s.decoder_norm(g)[:, 1:].split(s.t, 1)  # R runs of [B, T, Dd]
        return torch.cat([s.decoder_pred(m(r)) for m, r in zip(s.channel_mapper, runs)], -1)[:, 0]


class Config_MBM_fMRI:  # the pickled config beside MinD-Vis's weights; only 'model' is read
    pass


def ae_loss():
    ae = FmriAutoencoder()
    state = ae.state_dict()
    mae = torch.load(f'{out}/fmri_encoder.pth', map_location='cpu', weights_only=False)['model']
    # MinD-Vis's non-strict load: every tensor whose name and shape match; the rest keep the model's own
    taken = {k: v for k, v in mae.items() if k in state and state[k].shape == v.shape}
    ae.load_state_dict(taken, strict=False)
    own = load_file(f'{out}/ae_own.safetensors')
    params = dict(ae.named_parameters())
    with torch.no_grad():
        for name, v in own.items():  # project layout -> PyTorch's
            v = T(v)
            if name.endswith('.weight') and v.ndim == 2: v = v.T
            elif name.endswith('.weight') and v.ndim == 3: v = v.permute(2, 1, 0)
            params[name].copy_(v)
    x = T(np.load(f'{out}/fmri.npy'))
    with torch.no_grad():
        loss = ((ae(x) - x) ** 2).mean().item()
    return loss, sorted(set(state) - set(taken)), sorted(set(mae) - set(state)), sorted(own)


if mode == 'maskgit':
    print(json.dumps({'loss': maskgit_loss()}))
elif mode == 'ae':
    loss, not_taken, unused, given = ae_loss()
    if not_taken != given:  # the lea side must supply exactly what the transfer leaves at its own init
        raise SystemExit(f'own-init tensors {given}, the transfer leaves {not_taken}')
    print(json.dumps({'loss': loss, 'own': not_taken, 'unused': unused}))
else:
    raise SystemExit(f'unknown mode {mode}')
