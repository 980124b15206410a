"""SciPy / statsmodels on the draws the TypeScript statistics used (test/stats.test.ts): reads the JSON file named by its argument.

bootstrap: scipy.stats.bootstrap with a Generator whose integers() returns the given resample indices, so SciPy's
own percentile and BCa code (quantiles, z0, jackknife acceleration) runs on exactly the same resamples.
signflip: scipy.stats.permutation_test(permutation_type='samples') for exact cases; for sampled ones a numpy
transcription of its p-value on the given sign patterns (SciPy draws its own). holm: statsmodels multipletests.
"""
import json
import sys

import numpy as np
from scipy import special, stats
from statsmodels.stats.multitest import multipletests


class FixedIndices(np.random.Generator):
    def __init__(self, indices):
        super().__init__(np.random.PCG64(0))
        self.indices = indices

    def integers(self, low, high=None, size=None, dtype="int64", endpoint=False):
        assert tuple(size) == self.indices.shape, (size, self.indices.shape)
        return self.indices


def bootstrap(case):
    x = np.asarray(case["values"], dtype=np.float64)
    idx = np.asarray(case["indices"], dtype=np.int64).reshape(-1, len(x))
    out = {}
    for method in ("percentile", "BCa"):
        r = stats.bootstrap((x,), np.mean, n_resamples=idx.shape[0], batch=None, method=method,
                            confidence_level=case["level"], rng=FixedIndices(idx))
        out[method.lower()] = [float(r.confidence_interval.low), float(r.confidence_interval.high)]
    return out


def signflip(case):
    d = np.asarray(case["d"], dtype=np.float64)
    alt = case["alternative"]
    if case.get("signs") is None:
        r = stats.permutation_test((d,), lambda x, axis: np.mean(x, axis=axis), permutation_type="samples",
                                   alternative=alt, n_resamples=case["resamples"], vectorized=True)
        return {"p": float(r.pvalue), "statistic": float(r.statistic)}
    signs = np.asarray(case["signs"], dtype=np.float64).reshape(-1, len(d))
    null = (signs * d).mean(axis=1)
    obs = d.mean()
    gamma = abs(np.finfo(np.float64).eps * 100 * obs)
    less = (np.sum(null <= obs + gamma) + 1) / (len(null) + 1)
    greater = (np.sum(null >= obs - gamma) + 1) / (len(null) + 1)
    p = {"less": less, "greater": greater, "two-sided": min(less, greater) * 2}[alt]
    return {"p": float(np.clip(p, 0, 1)), "statistic": float(obs)}


def correction(case):
    method = {"holm": "holm", "bonferroni": "bonferroni"}[case["method"]]
    return {"adjusted": [float(v) for v in multipletests(case["p"], alpha=0.01, method=method)[1]]}


def normal(case):
    return {"ndtr": [float(special.ndtr(z)) for z in case["z"]],
            "ndtri": [float(special.ndtri(p)) for p in case["p"]]}


KINDS = {"bootstrap": bootstrap, "signflip": signflip, "correction": correction, "normal": normal}
print(json.dumps([KINDS[c["kind"]](c) for c in json.load(open(sys.argv[1]))]))
