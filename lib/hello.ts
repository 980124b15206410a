/** The hello pipeline's two computations: render a greeting text, then summarise a text. */
import { createHash } from 'node:crypto';

export function renderGreeting(message: string, repeat: number, seed: number): string {
  const lines = Array.from({ length: repeat }, (_, i) => `${i + 1}/${repeat} ${message} (seed ${seed})`);
  return `${lines.join('\n')}\n`;
}

export interface TextSummary {
  lines: number;
  words: number;
  bytes: number;
  sha256: string;
  firstLine: string;
}

export function summarizeText(text: string): TextSummary {
  const lines = text.split('\n').filter((l) => l.length > 0);
  return {
    lines: lines.length,
    words: lines.reduce((n, l) => n + l.split(/\s+/).filter(Boolean).length, 0),
    bytes: Buffer.byteLength(text),
    sha256: createHash('sha256').update(text).digest('hex'),
    firstLine: lines[0] ?? '',
  };
}
