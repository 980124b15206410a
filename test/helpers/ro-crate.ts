/** Reads an exported RO-Crate with the `rocrate` Python package (test/oracles/ro_crate.py). */
import { fileURLToPath } from 'node:url';
import { runOracleFile } from './oracle.js';

const oracle = fileURLToPath(new URL('../oracles/ro_crate.py', import.meta.url));

/** What a crate reader finds. */
export interface CrateReading {
  conformsTo: string[];
  mainEntity: {
    id: string;
    types: string[];
    steps: { id: string; name: string; workExample: string }[];
    hasPart: string[];
  };
  byType: Record<string, string[]>;
  createActions: {
    id: string;
    instrument: string;
    object: string[];
    result: string[];
    actionStatus: string;
  }[];
  controlActions: { instrument: string; object: string }[];
  organizeActions: { instrument: string; object: string[]; result: string }[];
  runActions: string[];
  files: Record<
    string,
    { sha256: string; contentSize: string; carried: boolean; bytesSha256: string | null }
  >;
  runResults: Record<string, { value: number; description?: string; minValue?: number; maxValue?: number }>;
}

export const readCrate = (dir: string): CrateReading =>
  JSON.parse(runOracleFile(oracle, [dir])) as CrateReading;
