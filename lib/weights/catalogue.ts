/**
 * The upstream networks the paper configs name (configs/paper/*.yaml), one entry per file: where it is published
 * and the checksum its publisher gives, each fact with where it comes from. `lea weights fetch NAME` downloads an
 * entry through the verified downloader (lib/data/download.ts) and imports it as `lea weights import` would.
 * Nothing here is guessed: a URL or checksum that could not be found is null, and its source says so.
 */

export type PublishedChecksum = { sha256: string } | { sha256Prefix: string } | null;

export interface CatalogueEntry {
  /** The name the paper configs give the imported weights. */
  name: string;
  /** A WEIGHT_KINDS key. */
  kind: string;
  /** The upstream file's name (the download is kept under it). */
  file: string;
  url: string | null;
  checksum: PublishedChecksum;
  /** Whether the paper configs import it with `--expect full`. */
  expectFull: boolean;
  /** Where the URL and the checksum come from. */
  source: string;
}

const MINDVIS_FIGSHARE =
  "MinD-Vis's README links its data and pretrained encoders as one figshare share page " +
  '(https://figshare.com/s/94cd778e6afafb00946e), which gives no stable per-file URL and no sha256: ' +
  "pass the file's download link as --url";

export const CATALOGUE: readonly CatalogueEntry[] = [
  {
    name: 'clip-vit-h14',
    kind: 'openclip-vit-h14',
    file: 'open_clip_pytorch_model.bin',
    url: 'https://huggingface.co/laion/CLIP-ViT-H-14-laion2B-s32B-b79K/resolve/main/open_clip_pytorch_model.bin',
    checksum: null,
    expectFull: true,
    source:
      'open_clip pretrained.py: ViT-H-14 laion2b_s32b_b79k is the hf-hub repo laion/CLIP-ViT-H-14-laion2B-s32B-b79K; ' +
      "open_clip constants.py names its file open_clip_pytorch_model.bin; the URL is the Hub's resolve/main path. " +
      "The Hub shows the file's LFS sha256 on its page, but it is not in any source read here: none recorded",
  },
  {
    name: 'maskgit-tokenizer-imagenet256',
    kind: 'maskgit-tokenizer',
    file: 'tokenizer_imagenet256_checkpoint',
    url: 'https://storage.googleapis.com/maskgit-public/checkpoints/tokenizer_imagenet256_checkpoint',
    checksum: null,
    expectFull: false,
    source:
      'google-research/maskgit README, "Running pretrained models" table (ImageNet 256 x 256 tokenizer); ' +
      'no checksum is published',
  },
  {
    name: 'maskgit-imagenet256',
    kind: 'maskgit-transformer',
    file: 'maskgit_imagenet256_checkpoint',
    url: 'https://storage.googleapis.com/maskgit-public/checkpoints/maskgit_imagenet256_checkpoint',
    checksum: null,
    expectFull: false,
    source:
      'google-research/maskgit README, "Running pretrained models" table (ImageNet 256 x 256 MaskGIT transformer); ' +
      'no checksum is published',
  },
  {
    name: 'mindvis-mae-god',
    kind: 'mindvis-mae',
    file: 'fmri_encoder.pth',
    url: null,
    checksum: null,
    expectFull: false,
    source: `pretrains/GOD/fmri_encoder.pth: ${MINDVIS_FIGSHARE}`,
  },
  {
    name: 'mindvis-mae-bold5000',
    kind: 'mindvis-mae',
    file: 'fmri_encoder.pth',
    url: null,
    checksum: null,
    expectFull: false,
    source: `pretrains/BOLD5000/fmri_encoder.pth: ${MINDVIS_FIGSHARE}`,
  },
  {
    name: 'vit-h14-swag',
    kind: 'torchvision-vit-h14',
    file: 'vit_h_14_swag-80465313.pth',
    url: 'https://download.pytorch.org/models/vit_h_14_swag-80465313.pth',
    checksum: { sha256Prefix: '80465313' },
    expectFull: true,
    source:
      'torchvision models/vision_transformer.py, ViT_H_14_Weights.IMAGENET1K_SWAG_E2E_V1 url; vit_h_14 loads it ' +
      "with check_hash=True, so torch.hub checks the file name's hex suffix as a sha256 prefix",
  },
  {
    name: 'alexnet',
    kind: 'torchvision-alexnet',
    file: 'alexnet-owt-7be5be79.pth',
    url: 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
    checksum: { sha256Prefix: '7be5be79' },
    expectFull: false,
    source:
      'torchvision models/alexnet.py, AlexNet_Weights.IMAGENET1K_V1 url; alexnet loads it with check_hash=True, ' +
      "so torch.hub checks the file name's hex suffix as a sha256 prefix",
  },
  {
    name: 'lpips-alex-v0.1',
    kind: 'lpips-alex-v0.1',
    file: 'alex.pth',
    url: 'https://raw.githubusercontent.com/richzhang/PerceptualSimilarity/master/lpips/weights/v0.1/alex.pth',
    checksum: { sha256: 'df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0' },
    expectFull: false,
    source:
      'the file lives in richzhang/PerceptualSimilarity at lpips/weights/v0.1/alex.pth, as the lpips package ships ' +
      'it; the sha256 is the one the lpips 0.1.4 wheel on PyPI lists for it in its RECORD (6009 bytes)',
  },
  {
    name: 'fid-inception',
    kind: 'fid-inception-v3',
    file: 'weights-inception-2015-12-05-6726825d.pth',
    url: 'https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth',
    checksum: null,
    expectFull: false,
    source:
      'torch-fidelity feature_extractor_inceptionv3.py URL_INCEPTION_V3. The name ends in a torch.hub-style hex ' +
      "suffix, but torch-fidelity loads it without check_hash and pytorch-fid's own conversion " +
      "(pt_inception-2015-12-05-6726825d.pth) carries the same suffix, so it is not taken as this file's sha256 " +
      'prefix: none recorded',
  },
];

export function catalogueEntry(name: string): CatalogueEntry | undefined {
  return CATALOGUE.find((e) => e.name === name);
}
