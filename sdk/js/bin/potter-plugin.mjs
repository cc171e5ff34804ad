#!/usr/bin/env node
// potter-plugin build [DIR] [--module FILE] [--world WORLD] [-o OUT.wasm]
// potter-plugin wit
//
// `build` reads the one `<name>.plugin.toml` in DIR (default `.`): the world is its `kind`
// (`--world` for the `-with-namespace` worlds), the module `--module`, else the `main` of
// DIR/package.json, else `DIR/<name>.js`; the output `DIR/<name>.wasm`. Imports from
// '@potter-config/sdk' are inlined (componentize-js takes one module); the component is built
// without `fetch`, whose wasi:http imports the host refuses.
import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = (relative) => fileURLToPath(new URL(relative, import.meta.url));
const WORLDS = ['validator', 'source', 'validator-with-namespace', 'source-with-namespace'];
const HELPER_NAMES = ['Config', 'Issue', 'validator', 'source', 'log', 'environment', 'namespaceConfig'];

function fail(message) {
    console.error(`potter-plugin: ${message}`);
    process.exit(1);
}

async function readManifest(directory) {
    const manifests = (await readdir(directory)).filter((name) => name.endsWith('.plugin.toml')).sort();
    if (manifests.length !== 1) {
        fail(`${directory} must hold exactly one <name>.plugin.toml (found: ${manifests.join(', ') || 'none'})`);
    }
    const text = await readFile(join(directory, manifests[0]), 'utf8');
    const field = (key) => text.match(new RegExp(`^${key}\\s*=\\s*"([^"]*)"`, 'm'))?.[1];
    const name = field('name');
    const kind = field('kind');
    if (!name || !['validator', 'source'].includes(kind)) {
        fail(`${manifests[0]}: needs name = "..." and kind = "validator" or "source"`);
    }
    if (manifests[0] !== `${name}.plugin.toml`) {
        fail(`${manifests[0]}: the file must be named ${name}.plugin.toml (after its name)`);
    }
    return { name, kind };
}

/** The `main` of DIR's package.json, if it names one. */
async function mainOf(directory) {
    const text = await readFile(join(directory, 'package.json'), 'utf8').catch(() => undefined);
    return text === undefined ? undefined : JSON.parse(text).main;
}

/** The module with its '@potter-config/sdk' imports replaced by the helpers themselves. */
export async function inlineHelpers(source) {
    const pattern = /^\s*import\s*\{([^}]*)\}\s*from\s*['"]@potter-config\/sdk['"]\s*;?[ \t]*$/gm;
    const bindings = [];
    const stripped = source.replace(pattern, (_, names) => {
        for (const entry of names.split(',').map((part) => part.trim()).filter(Boolean)) {
            const [imported, local = imported] = entry.split(/\s+as\s+/).map((part) => part.trim());
            if (!HELPER_NAMES.includes(imported)) {
                fail(`'@potter-config/sdk' has no export ${imported} (it has ${HELPER_NAMES.join(', ')})`);
            }
            bindings.push(`const ${local} = __potterSdk.${imported};`);
        }
        return '';
    });
    if (bindings.length === 0) {
        return source;
    }
    const helpers = (await readFile(here('../helpers.js'), 'utf8')).replace(/^export /gm, '');
    const prelude = [
        "import { log as __potterLog, environment as __potterEnvironment, namespaceConfig as __potterNamespaceConfig } from 'potter:config/host@0.2.0';",
        'const __potterSdk = (() => {',
        helpers,
        'const log = (level, message) => __potterLog(level, String(message));',
        'const environment = () => __potterEnvironment();',
        'const namespaceConfig = () => JSON.parse(__potterNamespaceConfig());',
        `return { ${HELPER_NAMES.join(', ')} };`,
        '})();',
        ...bindings,
    ].join('\n');
    // ES imports must stay at the top level; the prelude's own import is hoisted like any other.
    return `${prelude}\n${stripped}`;
}

async function build(args) {
    let directory = '.';
    let module;
    let world;
    let out;
    for (let i = 0; i < args.length; i++) {
        const arg = args[i];
        const value = () => args[++i] ?? fail(`${arg} needs a value`);
        if (arg === '--module') module = value();
        else if (arg === '--world') world = value();
        else if (arg === '-o' || arg === '--out') out = value();
        else if (arg.startsWith('-')) fail(`unknown option ${arg}`);
        else directory = arg;
    }
    const { name, kind } = await readManifest(directory);
    world ??= kind;
    if (!WORLDS.includes(world)) fail(`unknown world ${world} (one of ${WORLDS.join(', ')})`);
    if (!world.startsWith(kind)) fail(`world ${world} does not match the manifest's kind ${kind}`);
    module ??= join(directory, await mainOf(directory) ?? `${name}.js`);
    out ??= join(directory, `${name}.wasm`);
    const source = await readFile(module, 'utf8').catch(() => fail(`${module} not found (--module names the plugin's module)`));
    const { componentize } = await import('@bytecodealliance/componentize-js');
    const { component } = await componentize(await inlineHelpers(source), {
        witPath: here('../wit'),
        worldName: world,
        disableFeatures: ['http', 'fetch-event'],
    });
    await writeFile(`${out}.tmp`, component);
    await rename(`${out}.tmp`, out);
    console.log(out);
}

const [command, ...rest] = process.argv.slice(2);
if (command === 'build') {
    await build(rest);
} else if (command === 'wit') {
    console.log(here('../wit'));
} else {
    fail('usage: potter-plugin build [DIR] [--module FILE] [--world WORLD] [-o OUT.wasm] | potter-plugin wit');
}
