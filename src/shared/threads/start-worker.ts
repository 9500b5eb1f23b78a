import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * Starts the module `./<entry>.js` beside `callerUrl` as a worker thread. Run from source (tests),
 * the caller is a `.ts` file: the thread then registers the TypeScript loader before it loads the
 * `.ts` entry.
 */
export function startWorker(callerUrl: string, entry: string, options: WorkerOptions = {}): Worker {
  if (!callerUrl.endsWith('.ts')) return new Worker(new URL(`./${entry}.js`, callerUrl), options);
  const tsx = pathToFileURL(
    createRequire(callerUrl)
      .resolve('tsx/esm/api')
      .replace(/\.cjs$/, '.mjs'),
  ).href;
  const module = new URL(`./${entry}.ts`, callerUrl).href;
  return new Worker(`import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(module)}); })`, {
    ...options,
    eval: true,
  });
}
