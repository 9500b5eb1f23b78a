// Copies the browser bundles the server hands out from devDependencies into public/vendor at build
// time, so that a production install (without devDependencies) still serves them: nothing is
// fetched from a CDN by the reader's browser.
import { copyFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const target = fileURLToPath(new URL('../public/vendor/', import.meta.url));
mkdirSync(target, { recursive: true });
copyFileSync(require.resolve('redoc/bundles/redoc.standalone.js'), `${target}redoc.standalone.js`);
copyFileSync(require.resolve('redoc/bundles/redoc.standalone.js.LICENSE.txt'), `${target}redoc.standalone.js.LICENSE.txt`);
