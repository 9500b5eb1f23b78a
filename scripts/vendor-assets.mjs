// Copies the browser bundles the server hands out from devDependencies into public/vendor at build
// time, so that a production install (without devDependencies) still serves them: nothing is
// fetched from a CDN by the reader's browser.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const target = fileURLToPath(new URL('../public/vendor/', import.meta.url));
mkdirSync(target, { recursive: true });
// ReDoc's menu footer loads Redocly's logo from their CDN, which the page's policy blocks (and the
// browser reports as an error on every load): an empty image of this bundle's own takes its place.
const EMPTY_IMAGE = 'data:image/svg+xml;base64,' + Buffer.from('<svg xmlns="http://www.w3.org/2000/svg"/>').toString('base64');
const redoc = readFileSync(require.resolve('redoc/bundles/redoc.standalone.js'), 'utf8');
writeFileSync(`${target}redoc.standalone.js`, redoc.replaceAll('https://cdn.redoc.ly/redoc/logo-mini.svg', EMPTY_IMAGE));
copyFileSync(require.resolve('redoc/bundles/redoc.standalone.js.LICENSE.txt'), `${target}redoc.standalone.js.LICENSE.txt`);
