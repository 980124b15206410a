/**
 * What every metric name means: one table that the metrics stage (which names it computes), the run record
 * (`metricDefinitions`), `lea status`, the report and the baseline check all read, so a name cannot say more
 * than its computation. `paper` is true only for a metric computed as the paper computes it (spec §5, with
 * the paper's networks where it uses one); a stand-in (a miniature network, or φ instead of the paper's
 * features) has a name of its own, and a baseline naming a stand-in is refused (a paper table has no such
 * column). The paper's result tables were not retrieved (spec §6): `source` names the table and the
 * column as eval_metrics.py names it, to be checked against the PDF when filling a baseline.
 */

export interface MetricDefinition {
  /** One line: network, features, n, trials, which images. */
  definition: string;
  /** Computed as the paper computes it. */
  paper: boolean;
  /** The paper metric this one stands in for (never true together with paper). */
  standInFor?: string;
  /** Paper metrics: the table and column the value comes from. */
  source?: string;
  better: 'higher' | 'lower';
  /** A reference row (a baseline that shows the task is above chance), not a result. */
  reference?: boolean;
}

const PER_SAMPLE = 'per decoded sample, then mean (min, max) over samples';
const TWO_WAY =
  'fraction of j ≠ i where the measure ranks sample i closer to its own ground truth than to ground truth j';
const PAPER_DECODING = 'Table 3 (decoding)';

/** 2-way identification on pixels of the uint8 images (spec §5.2); `reading`: what the paper's column may be. */
const pixelTwoWay = (
  measure: string,
  better: MetricDefinition['better'],
  reading = '',
): MetricDefinition => ({
  definition: `2-way identification by ${measure} on uint8 pixels: ${TWO_WAY}; ${PER_SAMPLE}${reading}`,
  paper: true,
  source: `${PAPER_DECODING}, column ${measure.split(' ')[0]}`,
  better,
});

/**
 * mse and snr have two readings of the paper's column: LEA's metric driver is unpublished, and its
 * eval_metrics.py subtracts and squares whatever arrays it is given. Given uint8 arrays, as MinD-Vis's
 * ldm_for_fmri.py passes them, numpy wraps both modulo 256 (the *_uint8wrap metrics); given wider arrays, it
 * computes the true measure. Which one produced the paper's numbers is unknown: compare both with the table.
 */
const TRUE_READING =
  ". One of two readings of the paper's column (the true measure; see the _uint8wrap metric: the paper's driver is unpublished)";
const WRAP_READING =
  ", the difference and the squares wrapped modulo 256 as numpy's uint8 arithmetic wraps them. The other reading of the paper's column: what eval_metrics.py computes if LEA's unpublished driver passed uint8 arrays, as MinD-Vis's ldm_for_fmri.py does";

/** Exact names. */
const EXACT: Record<string, MetricDefinition> = {
  'decode.nway50': {
    definition:
      '50-way top-1: torchvision ViT-H/14 (imported) c* = argmax on the ground truth, softmax on the sample; ' +
      `1000 trials of 49 distinct classes out of the 999 others, success when p[c*] is the largest; ${PER_SAMPLE}`,
    paper: true,
    source: `${PAPER_DECODING}, column top-1-class (50-way)`,
    better: 'higher',
  },
  'decode.twoway_mse': pixelTwoWay('mse (lower is closer)', 'higher', TRUE_READING),
  'decode.twoway_mse_uint8wrap': pixelTwoWay('mse (lower is closer)', 'higher', WRAP_READING),
  'decode.twoway_pcc': pixelTwoWay('pcc (Pearson r over all pixels)', 'higher'),
  'decode.twoway_snr': pixelTwoWay('snr (10·log10 Σgt² / Σ(pred − gt)²)', 'higher', TRUE_READING),
  'decode.twoway_snr_uint8wrap': pixelTwoWay('snr (10·log10 Σgt² / Σ(pred − gt)²)', 'higher', WRAP_READING),
  'decode.twoway_psm': {
    definition: `2-way identification by LPIPS (torchvision AlexNet + lpips v0.1 heads, imported; images in [-1, 1]): ${TWO_WAY}; ${PER_SAMPLE}`,
    paper: true,
    source: `${PAPER_DECODING}, column psm`,
    better: 'higher',
  },
  'decode.ssim': {
    definition: `SSIM of the whole stacks (skimage structural_similarity, data_range 255, channel_axis -1, a 3-D SSIM over [n, h, w, 3]); ${PER_SAMPLE}`,
    paper: true,
    source: `${PAPER_DECODING}, column ssim`,
    better: 'higher',
  },
  'decode.ssim_mean': {
    definition: `SSIM per image (data_range 255, channel_axis -1), mean over images; ${PER_SAMPLE} (the usual alternative to the paper's stack SSIM)`,
    paper: false,
    better: 'higher',
  },
  'decode.fid': {
    definition:
      'FID: torch-fidelity InceptionV3 (imported), 64-d features (torchmetrics FrechetInceptionDistance(feature=64)), ground-truth set against one sample set; ' +
      "images resized to 299 px as metrics.fidResize says (tf1: the TF1 bilinear of the torchmetrics 0.11.4 LEA pins; antialias: torchmetrics' later default); " +
      PER_SAMPLE,
    paper: true,
    source: `${PAPER_DECODING}, column fid`,
    better: 'lower',
  },
  'decode.fid_phi': {
    definition: `Fréchet distance on φ (the pipeline's image features, not Inception), ground truths against one sample set; ${PER_SAMPLE}`,
    paper: false,
    standInFor: 'decode.fid',
    better: 'lower',
  },
  'decode.clip_twoway': {
    definition: `CLIP 2-way: open_clip ViT-H/14 image features (imported) of samples and ground truths, Pearson matrix R (ground truths × samples), mean over columns j of #{k: R[k,j] < R[j,j]} / (n − 1); ${PER_SAMPLE}`,
    paper: true,
    source: `${PAPER_DECODING}, column clip`,
    better: 'higher',
  },
  'decode.phi_twoway': {
    definition: `2-way identification on φ (the pipeline's image features; the CLIP metric's computation on another network); ${PER_SAMPLE}`,
    paper: false,
    standInFor: 'decode.clip_twoway',
    better: 'higher',
  },
  'encode.pearson': {
    definition:
      'Pearson r between predicted and measured test voxel vectors, per item, mean over items (spec §5: the paper says Pearson, its exact computation and scaling are unknown)',
    paper: false,
    better: 'higher',
  },
  'encode.pearson_voxel': {
    definition: 'Pearson r across test items per voxel, mean over voxels',
    paper: false,
    better: 'higher',
  },
  'encode.mse': {
    definition: 'mean squared error of the predicted test voxels',
    paper: false,
    better: 'lower',
  },
  'encode.twoway': {
    definition: '2-way identification of the predicted test voxel vectors by Pearson r',
    paper: false,
    better: 'higher',
  },
};

interface Pattern {
  match: RegExp;
  define(m: RegExpMatchArray): MetricDefinition | undefined;
}

/** How the ridge alpha was chosen, from a name's suffix. */
const alphaText = (suffix: string): string =>
  suffix === 'cv'
    ? 'alpha chosen by k-fold CV on the training pairs'
    : `alpha ${suffix.slice('alpha'.length)}`;

const PATTERNS: Pattern[] = [
  {
    match: /^decode\.proto_nway(\d+)$/,
    define: ([, n]) => ({
      definition:
        `${n}-way top-1 with the miniature's prototype classifier: softmax(20·cos(φ(img), class mean of φ over ` +
        `training images)), c* = its argmax on the ground truth; 1000 trials of ${Number(n) - 1} distinct other classes; ${PER_SAMPLE}`,
      paper: false,
      standInFor: 'decode.nway50',
      better: 'higher',
    }),
  },
  {
    match: /^align\.phi_twoway@(cv|alpha[0-9.e+-]+)$/,
    define: ([, a]) => ({
      definition: `2-way identification on φ of the decoding ridge's test output (latents → φ, re-normalised; ${alphaText(a!)}) against φ of the test images`,
      paper: false,
      better: 'higher',
    }),
  },
  {
    match: /^align\.z_pearson@(cv|alpha[0-9.e+-]+)$/,
    define: ([, a]) => ({
      definition: `per-item Pearson r between the encoding ridge's test output (φ → latents with intercept, re-normalised; ${alphaText(a!)}) and the test fMRI's latents`,
      paper: false,
      better: 'higher',
    }),
  },
  {
    match: /^ref\.voxels_to_phi\.phi_twoway$/,
    define: () => ({
      definition:
        '2-way identification on φ of a ridge straight from test voxels to φ (no autoencoder; alpha as the decoding ridge), re-normalised',
      paper: false,
      better: 'higher',
      reference: true,
    }),
  },
  {
    match: /^ref\.shuffled\.(.+)$/,
    define: ([, base]) => {
      const d = metricDefinition(base!);
      return (
        d && {
          definition: `${base} on a shuffled pairing (sample i against the ground truth of item σ(i), one seeded derangement): should be near chance`,
          paper: false,
          better: d.better,
          reference: true,
        }
      );
    },
  },
];

/** The definition of a metric name, or undefined for a name no stage computes. */
export function metricDefinition(name: string): MetricDefinition | undefined {
  const exact = EXACT[name];
  if (exact) return exact;
  for (const p of PATTERNS) {
    const m = name.match(p.match);
    if (m) return p.define(m);
  }
  return undefined;
}

/** The run record's `metricDefinitions`: each metric's one-line definition and whether it is the paper's. */
export function metricDefinitions(
  names: Iterable<string>,
): Record<string, { definition: string; paper: boolean }> {
  const out: Record<string, { definition: string; paper: boolean }> = {};
  for (const name of names) {
    const d = metricDefinition(name);
    out[name] = d
      ? { definition: d.definition, paper: d.paper }
      : { definition: 'not a metric this version computes', paper: false };
  }
  return out;
}

/** The paper metrics, for the baseline template. */
export function paperMetrics(): [string, MetricDefinition][] {
  return Object.entries(EXACT).filter(([, d]) => d.paper);
}

/**
 * The paper's metric networks: the metrics stage's weights input → the imported kind and the config field
 * (`metrics.*`) that names it.
 */
export const METRIC_NETWORKS = {
  classifier: { kind: 'torchvision-vit-h14', field: 'metrics.classifier' },
  clipMetric: { kind: 'openclip-vit-h14', field: 'metrics.clip' },
  lpipsBackbone: { kind: 'torchvision-alexnet', field: 'metrics.lpips.backbone' },
  lpipsHeads: { kind: 'lpips-alex-v0.1', field: 'metrics.lpips.heads' },
  inception: { kind: 'fid-inception-v3', field: 'metrics.inception' },
} as const;

/** The weights names a config's `metrics` section gives each of those inputs. */
export function metricNetworkNames(m: {
  classifier?: string;
  clip?: string;
  lpips?: { backbone: string; heads: string };
  inception?: string;
}): Record<keyof typeof METRIC_NETWORKS, string | undefined> {
  return {
    classifier: m.classifier,
    clipMetric: m.clip,
    lpipsBackbone: m.lpips?.backbone,
    lpipsHeads: m.lpips?.heads,
    inception: m.inception,
  };
}
