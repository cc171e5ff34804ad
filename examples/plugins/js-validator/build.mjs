// Builds validator.js into a component: `node build.mjs OUT.wasm` (run by scripts/build-polyglot-plugins).
import { readFile, writeFile, rename } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { componentize } from '@bytecodealliance/componentize-js';

const here = (relative) => fileURLToPath(new URL(relative, import.meta.url));
const out = process.argv[2];
if (!out) {
    console.error('usage: node build.mjs OUT.wasm');
    process.exit(2);
}

const { component } = await componentize(await readFile(here('./validator.js'), 'utf8'), {
    witPath: here('../../../wit'),
    worldName: 'validator',
    // The plugin needs no network: leaving out fetch keeps wasi:http imports out of the component,
    // which the host refuses. stdio stays so uncaught errors reach the host log.
    disableFeatures: ['http', 'fetch-event'],
});
await writeFile(`${out}.tmp`, component);
await rename(`${out}.tmp`, out);
