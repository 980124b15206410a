#!/usr/bin/env node
// Entry point of the `lea` command: the CLI is TypeScript, loaded through tsx so no build step is needed.
import { register } from 'tsx/esm/api';

register();
await import('../cli/main.ts');
