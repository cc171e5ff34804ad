// Potter Config plugin helpers. Plain ES module: Node runs it for unit tests, and
// `potter-plugin build` inlines it into the plugin's module (componentize-js takes one module),
// adding `log`, `environment` and `namespaceConfig` over the host's WIT imports.

/** The configuration a plugin receives: only its manifest's prefixes and `plugins.<name>`. */
export class Config {
    constructor(tree) {
        this.tree = tree;
    }

    /** The configuration from the JSON text the host passes. */
    static parse(text) {
        return new Config(JSON.parse(text));
    }

    /** The whole tree. */
    root() {
        return this.tree;
    }

    /** The value at a dotted key path (numbers index arrays), or `fallback` when absent. */
    get(dotted, fallback = undefined) {
        let node = this.tree;
        for (const segment of dotted === '' ? [] : dotted.split('.')) {
            if (Array.isArray(node) && /^\d+$/.test(segment) && Number(segment) < node.length) {
                node = node[Number(segment)];
            } else if (node !== null && typeof node === 'object' && !Array.isArray(node) && Object.hasOwn(node, segment)) {
                node = node[segment];
            } else {
                return fallback;
            }
        }
        return node;
    }
}

/** Issues are the WIT `issue` record: `{ path, message, severity }`. */
export const Issue = {
    /** An error: the change that produced the view is rejected. */
    error(path, message) {
        return { path, message, severity: 'error' };
    },
    /** A warning: reported, the change is applied. */
    warning(path, message) {
        return { path, message, severity: 'warning' };
    },
};

/** The `validate` export of world `validator` from `check(view, config: Config) -> Issue[]`. */
export function validator(check) {
    return (view, config) => Array.from(check(view, Config.parse(config)));
}

/**
 * The exports of world `source` (`load`, `pollIntervalMs`, `changeToken`) from
 * `load(environment) -> object` (throw to report a failure, named with the plugin by the host),
 * a poll interval in milliseconds (0: never poll) and an optional `changeToken() -> string`.
 */
export function source(load, { pollIntervalMs = 0, changeToken = undefined } = {}) {
    return {
        load(environment) {
            const layer = load(environment);
            if (layer === null || typeof layer !== 'object' || Array.isArray(layer)) {
                throw new Error(`load returned ${Array.isArray(layer) ? 'an array' : typeof layer}, not an object`);
            }
            return JSON.stringify(layer);
        },
        pollIntervalMs: () => pollIntervalMs,
        changeToken: () => (changeToken === undefined ? undefined : String(changeToken())),
    };
}
