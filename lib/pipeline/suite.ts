/**
 * Suites: several runs started as one, reported as the paper lays out its tables (a row per subject, then the
 * mean). What the suite workflow, its report and `lea status` share.
 */
import type { RunStatus } from './run-record.js';

export interface SuiteMember {
  runId: string;
  configName: string;
  dataset: string;
  subject: string;
  status: RunStatus;
  metrics: Record<string, number>;
  error?: string;
}

/** Each metric's mean over the completed members that have it (a failed member leaves the mean over fewer). */
export function meanMetrics(members: Pick<SuiteMember, 'status' | 'metrics'>[]): Record<string, number> {
  const sums = new Map<string, { total: number; n: number }>();
  for (const m of members) {
    if (m.status !== 'completed') continue;
    for (const [name, v] of Object.entries(m.metrics)) {
      if (!Number.isFinite(v)) continue;
      const s = sums.get(name) ?? { total: 0, n: 0 };
      sums.set(name, { total: s.total + v, n: s.n + 1 });
    }
  }
  return Object.fromEntries([...sums].map(([name, s]) => [name, s.total / s.n]));
}

/** A suite's name: its members' config names, joined (the LeaConfig search attribute of the suite). */
export function suiteName(configNames: string[]): string {
  return configNames.join('+');
}
