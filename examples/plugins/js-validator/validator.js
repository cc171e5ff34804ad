// Potter Config validator plugin in JavaScript (world `validator`), built with @potter-config/sdk
// (`potter-plugin build`, which inlines the helpers imported below into the component).
//
// Rule: every `llm_providers.<name>.timeout` must be less than `api.timeout`. An API request that
// waits on a provider call has to outlive it; otherwise the API gives up first and the provider
// call keeps running for nobody. Both are in seconds, as in the rest of the configuration.

import { Issue, log, validator } from '@potter-config/sdk';

// A key the host accepts in an issue path: letters, digits, `_` and `-`.
const KEY_SEGMENT = /^[A-Za-z0-9_-]+$/;

const isNumber = (value) => typeof value === 'number' && Number.isFinite(value);
const isObject = (value) => value !== null && typeof value === 'object' && !Array.isArray(value);

// `view` is { environment, service }; `config` a Config (`get`, `root`). Returns Issue records.
export const validate = validator((view, config) => {
    const root = config.root();
    const apiTimeout = isObject(root.api) ? root.api.timeout : undefined;
    const providers = root.llm_providers;
    // Without both numbers there is nothing to compare; the schema checks types and presence.
    if (!isNumber(apiTimeout) || !isObject(providers)) {
        return [];
    }
    const issues = [];
    for (const name of Object.keys(providers).sort()) {
        const provider = providers[name];
        if (!isObject(provider) || !isNumber(provider.timeout)) {
            continue;
        }
        if (provider.timeout >= apiTimeout) {
            // A provider name the host cannot address (say, with a dot) is reported on the table.
            const path = KEY_SEGMENT.test(name) ? `llm_providers.${name}.timeout` : 'llm_providers';
            issues.push(Issue.error(path,
                `llm_providers.${name}.timeout (${provider.timeout}) must be less than ` +
                    `api.timeout (${apiTimeout}): the API request would give up before the provider call it waits on`));
        }
    }
    if (issues.length > 0) {
        log('debug', `${issues.length} issue(s) in view ${view.environment}/${view.service ?? '-'}`);
    }
    return issues;
});
