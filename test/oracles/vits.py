"""Reduced open_clip and torchvision ViTs with random weights saved as upstream saves them (.pth, and
safetensors), fixed images, the references' preprocessed pixels and outputs, and PIL resizes of one image.
Usage: vits.py OUT_DIR ORACLES_DIR RESIZES_JSON"""
import sys, json, numpy as np, torch
sys.path.insert(0, sys.argv[2])
from refs import import_torchvision
tv = import_torchvision()
import open_clip
from open_clip import factory
from PIL import Image
from safetensors.torch import save_file
out = sys.argv[1]
RESIZES = json.loads(sys.argv[3])
torch.manual_seed(0)
rng = np.random.default_rng(0)

def jitter(model):  # random values everywhere, LayerNorm gains and zero biases included
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)

def save(model, name):
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save(sd, f'{out}/{name}.pth')
    save_file(sd, f'{out}/{name}.safetensors')

# open_clip: a reduced ViT-H-14 config (head width 32), through its own factory and eval transform
factory._MODEL_CONFIGS['tiny-vit'] = {
    'embed_dim': 48,
    'vision_cfg': {'image_size': 56, 'layers': 2, 'width': 96, 'head_width': 32, 'patch_size': 14},
    'text_cfg': {'context_length': 8, 'vocab_size': 100, 'width': 32, 'heads': 2, 'layers': 1},
}
model, _, preprocess = open_clip.create_model_and_transforms('tiny-vit')
model.eval(); jitter(model); save(model, 'openclip')
imgs = rng.integers(0, 256, (3, 75, 101, 3), dtype=np.uint8)  # downscaled: shorter side 75 -> 56
x = torch.stack([preprocess(Image.fromarray(a)) for a in imgs])
with torch.no_grad():
    feats = model.encode_image(x, normalize=True)
np.save(f'{out}/openclip-images.npy', imgs)
np.save(f'{out}/openclip-pixels.npy', x.numpy())
np.save(f'{out}/openclip-features.npy', feats.numpy())

# torchvision: a reduced VisionTransformer through the SWAG E2E preset transform at its own size
from torchvision.models.vision_transformer import VisionTransformer
from torchvision.transforms._presets import ImageClassification
from torchvision.transforms import InterpolationMode
vit = VisionTransformer(image_size=70, patch_size=14, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128,
                        num_classes=10)
vit.eval(); jitter(vit); save(vit, 'torchvision')
tf = ImageClassification(crop_size=70, resize_size=70, interpolation=InterpolationMode.BICUBIC)
imgs = rng.integers(0, 256, (2, 61, 47, 3), dtype=np.uint8)  # upscaled: shorter side 47 -> 70
x = torch.stack([tf(Image.fromarray(a)) for a in imgs])
with torch.no_grad():
    logits = vit(x)
np.save(f'{out}/torchvision-images.npy', imgs)
np.save(f'{out}/torchvision-pixels.npy', x.numpy())
np.save(f'{out}/torchvision-logits.npy', logits.numpy())

# PIL's bicubic resize of one non-square image, down and up in each direction
img = rng.integers(0, 256, (97, 131, 3), dtype=np.uint8)
np.save(f'{out}/resize-in.npy', img)
for h, w in RESIZES:
    np.save(f'{out}/resize-{h}x{w}.npy', np.asarray(Image.fromarray(img).resize((w, h), Image.BICUBIC)))
