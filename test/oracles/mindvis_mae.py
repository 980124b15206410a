"""Writes <out>/fmri_encoder.pth, a reduced MinD-Vis MAE with random weights saved as MinD-Vis saves it
({'model', 'optimizer', 'epoch', 'scaler', 'config'}), and reference outputs of a PyTorch re-statement of
the architecture (spec section 2.2) as .npy files. Usage: mindvis_mae.py OUT_DIR [SIZES_JSON];
`mindvis_mae.py --shapes SIZES_JSON` prints the state dict's key/shape table instead."""
import json, sys, math, numpy as np, torch, torch.nn as nn
out = sys.argv[1]
torch.manual_seed(3)
P, D, DEPTH, H, DD, DDEPTH, DH, K, B = 4, 32, 2, 4, 24, 1, 3, 40, 3
if len(sys.argv) > 2:  # other sizes, e.g. MinD-Vis's own: {"P": 16, "D": 1024, "DEPTH": 24, ...}
    sizes = json.loads(sys.argv[2])
    P, D, DEPTH, H, DD, DDEPTH, DH, K = (sizes[k] for k in ['P', 'D', 'DEPTH', 'H', 'DD', 'DDEPTH', 'DH', 'K'])

class Config_MBM_fMRI:  # MinD-Vis pickles its config object beside the weights
    def __init__(self):
        self.patch_size, self.embed_dim, self.decoder_embed_dim = P, D, DD
        self.depth, self.num_heads, self.decoder_num_heads, self.mlp_ratio = DEPTH, H, DH, 1.0
        self.mask_ratio, self.lr = 0.75, 2.5e-4

def sincos(dim, n):
    omega = 1.0 / 10000 ** (np.arange(dim // 2, dtype=float) / (dim / 2.0))
    out = np.outer(np.arange(n, dtype=np.float32), omega)
    emb = np.concatenate([np.sin(out), np.cos(out)], axis=1)
    return torch.from_numpy(np.concatenate([np.zeros([1, dim]), emb], 0)).float().unsqueeze(0)

class Attention(nn.Module):
    def __init__(s, d, h):
        super().__init__(); s.h = h; s.qkv = nn.Linear(d, 3 * d); s.proj = nn.Linear(d, d)
    def forward(s, x):
        b, n, d = x.shape
        q, k, v = s.qkv(x).reshape(b, n, 3, s.h, d // s.h).permute(2, 0, 3, 1, 4)
        a = (q @ k.transpose(-2, -1) / math.sqrt(d // s.h)).softmax(-1)
        return s.proj((a @ v).transpose(1, 2).reshape(b, n, d))

class Mlp(nn.Module):
    def __init__(s, d, f):
        super().__init__(); s.fc1 = nn.Linear(d, f); s.fc2 = nn.Linear(f, d)
    def forward(s, x): return s.fc2(torch.nn.functional.gelu(s.fc1(x)))

class Block(nn.Module):  # pre-LN ViT block, qkv bias, MLP ratio 1
    def __init__(s, d, h):
        super().__init__(); s.norm1 = nn.LayerNorm(d); s.attn = Attention(d, h); s.norm2 = nn.LayerNorm(d); s.mlp = Mlp(d, d)
    def forward(s, x):
        x = x + s.attn(s.norm1(x)); return x + s.mlp(s.norm2(x))

class PatchEmbed(nn.Module):
    def __init__(s):
        super().__init__(); s.proj = nn.Conv1d(1, D, kernel_size=P, stride=P)

class Mae(nn.Module):
    def __init__(s):
        super().__init__()
        L = K // P
        s.patch_embed = PatchEmbed()
        s.cls_token = nn.Parameter(torch.randn(1, 1, D) * 0.02)
        s.pos_embed = nn.Parameter(sincos(D, L), requires_grad=False)
        s.blocks = nn.ModuleList([Block(D, H) for _ in range(DEPTH)]); s.norm = nn.LayerNorm(D)
        s.decoder_embed = nn.Linear(D, DD)
        s.mask_token = nn.Parameter(torch.randn(1, 1, DD) * 0.02)
        s.decoder_pos_embed = nn.Parameter(sincos(DD, L), requires_grad=False)
        s.decoder_blocks = nn.ModuleList([Block(DD, DH) for _ in range(DDEPTH)]); s.decoder_norm = nn.LayerNorm(DD)
        s.decoder_pred = nn.Linear(DD, P)
    def encode(s, x, keep):  # x [B, 1, K]; keep [B, Lk] patch ids
        t = s.patch_embed.proj(x).transpose(1, 2) + s.pos_embed[:, 1:, :]
        t = torch.gather(t, 1, keep.unsqueeze(-1).repeat(1, 1, D))
        t = torch.cat([(s.cls_token + s.pos_embed[:, :1, :]).expand(x.shape[0], -1, -1), t], 1)
        for b in s.blocks: t = b(t)
        return s.norm(t)
    def decode(s, h, restore):
        e = s.decoder_embed(h)
        m = s.mask_token.repeat(e.shape[0], restore.shape[1] + 1 - e.shape[1], 1)
        t = torch.gather(torch.cat([e[:, 1:, :], m], 1), 1, restore.unsqueeze(-1).repeat(1, 1, DD))
        t = torch.cat([e[:, :1, :], t], 1) + s.decoder_pos_embed
        for b in s.decoder_blocks: t = b(t)
        return s.decoder_pred(s.decoder_norm(t))[:, 1:, :]

if out == '--shapes':  # the state dict's names and shapes only, built on the meta device (nothing allocated)
    with torch.device('meta'):
        print(json.dumps({k: list(v.shape) for k, v in Mae().state_dict().items()}))
    sys.exit(0)
m = Mae()
with torch.no_grad():  # make every parameter matter (LayerNorms and biases away from 1/0)
    for n, p in m.named_parameters():
        if 'pos_embed' not in n: p.add_(torch.randn_like(p) * 0.1)
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
x = torch.randn(B, 1, K)
L = K // P; lk = int(L * (1 - 0.75))
shuffle = torch.argsort(torch.rand(B, L), 1); keep = shuffle[:, :lk]; restore = torch.argsort(shuffle, 1)
# one optimizer step so 'optimizer' holds tensors, as a real checkpoint's does
m.decoder_pred.weight.sum().backward(); opt.step()
target = x.reshape(B, L, P)
mask = torch.ones(B, L); mask[:, :lk] = 0; mask = torch.gather(mask, 1, restore)
with torch.no_grad():
    h = m.encode(x, keep); pred = m.decode(h, restore)
    loss = (((pred - target) ** 2).mean(-1) * mask).sum() / mask.sum()
    full = m.encode(x, torch.arange(L).repeat(B, 1))
torch.save({'model': m.state_dict(), 'optimizer': opt.state_dict(), 'epoch': 3, 'scaler': {'scale': 65536.0},
            'config': Config_MBM_fMRI()}, f'{out}/fmri_encoder.pth')
for name, v in [('x', x[:, 0]), ('keep', keep.int()), ('latents', h), ('pred', pred), ('full', full)]:
    np.save(f'{out}/{name}.npy', v.numpy())
np.save(f'{out}/loss.npy', np.array(loss.item(), dtype=np.float64))
