"""Unit tests of rules.py on plain CPython: `python3 -m unittest` in this directory."""

import unittest

from rules import ALLOWED_MODELS_PATH, Finding, check

ALLOWED = {"allowed_models": ["gpt-4o", "claude-sonnet-4"]}


class CheckTest(unittest.TestCase):
    def test_allowed_models_pass(self):
        config = {"llm_providers": {"openai": {"model": "gpt-4o"}, "anthropic": {"model": "claude-sonnet-4"}}}
        self.assertEqual(check(config, ALLOWED), [])

    def test_model_outside_the_list_is_an_error_at_its_path(self):
        config = {"llm_providers": {"openai": {"model": "gpt-3.5-turbo"}, "anthropic": {"model": "claude-sonnet-4"}}}
        [finding] = check(config, ALLOWED)
        self.assertEqual(finding.path, "llm_providers.openai.model")
        self.assertTrue(finding.is_error)
        self.assertIn("'gpt-3.5-turbo' is not an allowed model", finding.message)

    def test_missing_list_is_a_warning(self):
        [finding] = check({"llm_providers": {"openai": {"model": "gpt-4o"}}}, {})
        self.assertEqual(finding, Finding(ALLOWED_MODELS_PATH, finding.message, False))
        self.assertIn("is missing", finding.message)

    def test_malformed_list_and_model_are_errors(self):
        [finding] = check({"llm_providers": {"a": {"model": "x"}}}, {"allowed_models": "gpt-4o"})
        self.assertEqual((finding.path, finding.is_error), (ALLOWED_MODELS_PATH, True))
        [finding] = check({"llm_providers": {"a": {"model": 4}}}, ALLOWED)
        self.assertEqual((finding.path, finding.is_error), ("llm_providers.a.model", True))

    def test_unaddressable_provider_name_is_reported_on_the_table(self):
        [finding] = check({"llm_providers": {"a.b": {"model": "x"}}}, ALLOWED)
        self.assertEqual(finding.path, "llm_providers")

    def test_no_providers_no_issues(self):
        self.assertEqual(check({}, {}), [])
        self.assertEqual(check({"llm_providers": {"a": {"timeout": 3}}}, ALLOWED), [])


if __name__ == "__main__":
    unittest.main()
