// {{name}}: a Potter Config source. `load` returns the layer for an environment; its keys must
// lie under the manifest's `prefixes`.

import { source } from '@potter-config/sdk';

export const { load, pollIntervalMs, changeToken } = source((environment) => ({
    '{{prefix}}': { greeting: `hello from {{name}} in ${environment}` },
}));
