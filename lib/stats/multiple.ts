/**
 * Corrections for testing a family of metrics at once: adjusted p-values as statsmodels'
 * multipletests(p, method=...) returns them (a metric is significant when its adjusted p < alpha).
 * holm: step-down, controls the family-wise error rate at alpha with no assumption on the tests' dependence;
 * bonferroni: m·p; none: the p-values as they are.
 */
export const CORRECTIONS = ['holm', 'bonferroni', 'none'] as const;
export type Correction = (typeof CORRECTIONS)[number];

export function adjustPValues(p: number[], method: Correction): number[] {
  const m = p.length;
  if (method === 'none') return [...p];
  if (method === 'bonferroni') return p.map((x) => Math.min(1, m * x));
  const order = p.map((x, i) => [x, i] as const).sort((a, b) => a[0] - b[0]);
  const out = new Array<number>(m);
  let running = 0;
  order.forEach(([x, i], rank) => {
    running = Math.max(running, Math.min(1, (m - rank) * x));
    out[i] = running;
  });
  return out;
}
