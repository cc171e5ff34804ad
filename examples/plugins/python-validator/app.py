"""Potter Config validator plugin in Python (world `validator` of `wit/potter-config.wit`).

componentize-py generates `wit_world` from the WIT at build time; the class below is the export.
"""

import json
from typing import List

import wit_world
from wit_world.imports import host, types

import rules


class WitWorld(wit_world.WitWorld):
    def validate(self, view: types.View, config: str) -> List[types.Issue]:
        namespace = json.loads(host.namespace_config())
        findings = rules.check(json.loads(config), namespace)
        if findings:
            host.log(host.LogLevel.DEBUG,
                     f"{len(findings)} issue(s) in view {view.environment}/{view.service or '-'}")
        return [
            types.Issue(f.path, f.message, types.Severity.ERROR if f.is_error else types.Severity.WARNING)
            for f in findings
        ]
