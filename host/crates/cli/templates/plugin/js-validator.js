// {{name}}: a Potter Config validator. Edit the rule; the manifest's `prefixes` say which keys
// it receives (plus its own namespace `plugins.{{name}}`).

import { Issue, validator } from '@potter-config/sdk';

export const validate = validator((view, config) => {
    if (view.environment === 'production' && config.get('app.debug') === true) {
        return [Issue.error('app.debug', 'debug must be off in production')];
    }
    return [];
});
