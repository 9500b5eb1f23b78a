// `npm start` runs this first: it builds only when a source is newer than the last build, so a
// restart with nothing changed starts at once instead of recompiling everything.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The newest modification time of the files under `path` (or of `path` itself), 0 when absent. */
function newest(path) {
  if (!existsSync(path)) return 0;
  const stat = statSync(path);
  if (!stat.isDirectory()) return stat.mtimeMs;
  let latest = stat.mtimeMs;
  for (const entry of readdirSync(path)) latest = Math.max(latest, newest(join(path, entry)));
  return latest;
}

/** Whether `npm run build` has something to do: no build yet, or an input newer than its output. */
export function isStale(root) {
  const built = join(root, 'dist', '.tsbuildinfo');
  const vendored = join(root, 'public', 'vendor', 'redoc.standalone.js');
  if (!existsSync(built) || !existsSync(vendored)) return true;
  const inputs = ['src', 'tsconfig.json', 'tsconfig.build.json', 'package.json', 'package-lock.json'].map((name) =>
    newest(join(root, name)),
  );
  // The bundle is copied afresh at the end of every build (tsc may leave an unchanged output untouched).
  return Math.max(...inputs) > statSync(vendored).mtimeMs;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  if (isStale(root)) {
    const result = spawnSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit', shell: process.platform === 'win32' });
    process.exit(result.status ?? 1);
  }
  process.stdout.write('build is up to date: skipping it\n');
}
