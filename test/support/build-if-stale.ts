import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** Vitest global setup: the tests that start `intake` as a process run the build, so it must be current. */
export default function setup(): void {
  const root = fileURLToPath(new URL('../../', import.meta.url));
  const result = spawnSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error('the build failed: the tests that start intake as a process need it');
}
