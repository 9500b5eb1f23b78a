import { readFileSync } from 'node:fs';

// src/app and dist/app are both two levels below the package root.
export const version: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string })
  .version;
