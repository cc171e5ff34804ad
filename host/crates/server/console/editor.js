// Editing: one value, or a subtree as JSON or YAML text. The draft is validated by the server's dry
// run while typing (debounced), its changes are shown before saving, and it is saved as one version
// with compare-and-set (If-Match); a conflict lists what changed meanwhile and offers a rebase.
import { html } from "./html.js";
import { useEffect, useRef, useState } from "./vendor/hooks.module.js";
import { changedKeys, enc, showValue } from "./api.js";
import { issueText } from "./tree.js";

const VALIDATE_DELAY_MS = 300;

/** `[key, value]` edits of every leaf of `value` below `prefix` (objects are nested, the rest are leaves). */
export function flatten(prefix, value, out = []) {
  if (value !== null && typeof value === "object" && !Array.isArray(value) && Object.keys(value).length > 0) {
    for (const [name, child] of Object.entries(value)) flatten(prefix ? `${prefix}.${name}` : name, child, out);
  } else {
    out.push([prefix, value]);
  }
  return out;
}

/** A JSON Merge Patch (the body of PATCH /v1/config/{env}) of dotted-key edits. */
export function toMergePatch(edits) {
  const patch = {};
  for (const [key, value] of edits) {
    const segments = key.split(".");
    let node = patch;
    segments.slice(0, -1).forEach((segment) => { node = node[segment] = node[segment] || {}; });
    node[segments[segments.length - 1]] = value;
  }
  return patch;
}

/** The subtree at `prefix` as a nested object of its (non-secret) leaves. */
export function subtreeValue(leaves, prefix) {
  let value = {};
  for (const leaf of leaves) {
    if (leaf.secret || !(leaf.key === prefix || leaf.key.startsWith(`${prefix}.`))) continue;
    const relative = leaf.key.slice(prefix.length + 1);
    if (!relative) return leaf.value;
    value = deepMerge(value, toMergePatch([[relative, leaf.value]]));
  }
  return value;
}

function deepMerge(into, from) {
  const out = Object.assign({}, into);
  for (const [name, child] of Object.entries(from)) {
    out[name] = child && typeof child === "object" && !Array.isArray(child) && out[name] && typeof out[name] === "object" ? deepMerge(out[name], child) : child;
  }
  return out;
}

/**
 * The issues a dry run reports that the draft should show: every error, and warnings about the
 * keys it edits (not the tree's standing coverage warnings), each once although every view of the
 * environment (its services and users) reports it.
 */
export function draftIssues(report, edits) {
  const seen = new Set();
  const concerns = (path) => edits.some(([key]) => path === key || path.startsWith(`${key}.`) || key.startsWith(`${path}.`));
  return (report.views || []).flatMap((view) => view.issues).filter((issue) => {
    const id = `${issue.severity}|${issue.path}|${issue.rule}|${issue.message}`;
    if (seen.has(id) || (issue.severity !== "error" && !concerns(issue.path))) return false;
    seen.add(id);
    return true;
  });
}

let yaml = null;
/** js-yaml, loaded only when a subtree is edited as YAML (keeps the first load small). */
async function loadYaml() {
  if (!yaml) yaml = await import("./vendor/js-yaml.mjs");
  return yaml;
}

/** The edits the draft text makes, or throws with a parse error. */
function draftEdits(target, text, format, current) {
  let value;
  if (format === "yaml") {
    value = yaml.load(text);
  } else if (target.kind === "leaf") {
    // A leaf takes JSON; text that is not JSON is taken as a string.
    try { value = JSON.parse(text); } catch (_) { value = text; }
  } else {
    value = JSON.parse(text);
  }
  if (target.kind === "subtree" && (value === null || typeof value !== "object" || Array.isArray(value))) {
    throw new Error(`the text of subtree ${target.key} must be an object`);
  }
  return flatten(target.key, value).filter(([key, after]) => !current.has(key) || showValue(current.get(key)) !== showValue(after));
}

export function Editor({ api, env, target, tree: live, notify, onIssues, onSaved, onRebase, onClose }) {
  // The draft is based on the tree as it was when editing began (or at the last rebase), not on
  // the live one, so a change made meanwhile is caught by compare-and-set instead of overwritten.
  const [tree, setBase] = useState(live);
  const current = new Map(tree.leaves.filter((leaf) => !leaf.secret).map((leaf) => [leaf.key, leaf.value]));
  const initial = target.kind === "leaf" ? showValue(current.get(target.key)) : JSON.stringify(subtreeValue(tree.leaves, target.key), null, 2);
  const [format, setFormat] = useState("json");
  const [text, setText] = useState(initial);
  const [check, setCheck] = useState({ state: "unchanged", edits: [], issues: [] });
  const [conflict, setConflict] = useState(null);
  const [saving, setSaving] = useState(false);
  const sequence = useRef(0);
  const area = useRef(null);

  useEffect(() => { area.current && area.current.focus(); }, []);

  // Debounced dry run of the draft; a newer draft's answer wins over an older one's.
  useEffect(() => {
    const number = ++sequence.current;
    let edits;
    try {
      edits = draftEdits(target, text, format, current);
    } catch (error) {
      setCheck({ state: "unparsable", edits: [], issues: [], error: error.message });
      return undefined;
    }
    if (edits.length === 0) {
      setCheck({ state: "unchanged", edits, issues: [] });
      onIssues([]);
      return undefined;
    }
    setCheck((previous) => Object.assign({}, previous, { state: "checking", edits }));
    const timer = setTimeout(async () => {
      try {
        const { body } = await api.call("POST", "/v1/validate", { body: { environment: env, changes: Object.fromEntries(edits) } });
        if (number !== sequence.current) return;
        const issues = draftIssues(body.issues, edits);
        setCheck({ state: body.valid ? "valid" : "invalid", edits, issues, withheld: body.issues.withheld || 0 });
        onIssues(issues);
      } catch (error) {
        if (number === sequence.current) setCheck({ state: "failed", edits, issues: [], error: error.message });
      }
    }, VALIDATE_DELAY_MS);
    return () => clearTimeout(timer);
  }, [text, format, tree.version]);

  const switchFormat = async (next) => {
    if (next === format) return;
    try {
      const value = format === "yaml" ? (await loadYaml()).load(text) : JSON.parse(text);
      const y = await loadYaml();
      setText(next === "yaml" ? y.dump(value) : JSON.stringify(value, null, 2));
      setFormat(next);
    } catch (error) {
      notify({ kind: "error", text: `Cannot switch to ${next.toUpperCase()}: ${error.message}` });
    }
  };

  const save = async () => {
    setSaving(true);
    try {
      const { body } = await api.call("PATCH", `/v1/config/${enc(env)}`, { body: toMergePatch(check.edits), headers: { "If-Match": `"${tree.version}"` } });
      notify({ kind: "saved", text: `Saved ${body.keys.length} key(s) as version ${body.version}: ${body.keys.join(", ")}` });
      onIssues([]);
      onSaved(body.version);
    } catch (error) {
      if (error.code === "conflict") {
        const page = await api.get(`/v1/history?env=${enc(env)}&limit=50`).catch(() => ({ records: [] }));
        setConflict({ message: error.message, records: page.records.filter((record) => record.version > tree.version) });
      } else if (error.code === "invalid") {
        const issues = draftIssues(error.body.error.issues || {}, check.edits);
        setCheck({ state: "invalid", edits: check.edits, issues });
        onIssues(issues);
        notify({ kind: "error", text: `Refused: ${error.message}` });
      } else {
        notify({ kind: "error", text: `Not saved: ${error.message}` });
      }
    } finally {
      setSaving(false);
    }
  };

  const rebase = async () => {
    // Not saveable until the dry run of the draft on the new base has answered.
    setCheck((previous) => Object.assign({}, previous, { state: "checking" }));
    const fresh = await onRebase();
    if (fresh) setBase(fresh);
    setConflict(null);
  };

  const issueFor = (key) => check.issues.filter((issue) => issue.path === key || issue.path.startsWith(`${key}.`));
  const label = target.kind === "leaf" ? `Value of ${target.key} (JSON; other text is a string)` : `Subtree ${target.key} as ${format.toUpperCase()}`;
  return html`
    <section class="editor" aria-label=${`Editing ${target.key}`} id="editor">
      <h2>Edit ${target.key}</h2>
      <p class="muted">Saved as runtime overrides of environment <strong>${env}</strong>, based on version ${tree.version}.${target.kind === "subtree" ? " Keys left out of the text are kept; secrets are not shown here." : ""}</p>
      ${live.version > tree.version && html`<p class="warning" id="moved-on">The configuration is now at version ${live.version}; saving checks that none of your keys changed since ${tree.version}.</p>`}
      ${target.kind === "subtree" && html`
        <fieldset class="formats"><legend>Format</legend>
          <label><input type="radio" name="format" checked=${format === "json"} onChange=${() => switchFormat("json")} /> JSON</label>
          <label><input type="radio" name="format" checked=${format === "yaml"} onChange=${() => switchFormat("yaml")} /> YAML</label>
        </fieldset>`}
      <label for="draft">${label}</label>
      <textarea id="draft" ref=${area} rows=${target.kind === "leaf" ? 2 : 12} spellcheck="false" value=${text} onInput=${(e) => setText(e.currentTarget.value)}></textarea>
      <p class=${`check ${check.state}`} id="check" role="status" aria-live="polite">${checkText(check)}</p>
      ${check.issues.length > 0 && html`
        <ul class="issues" id="draft-issues">${check.issues.map((issue) => html`<li class=${`issue ${issue.severity}`} data-issue-key=${issue.path}>${issueText(issue)}</li>`)}</ul>`}
      ${check.edits.length > 0 && html`
        <table class="diff" id="draft-diff">
          <caption>What saving changes</caption>
          <thead><tr><th scope="col">Key</th><th scope="col">Now</th><th scope="col">After</th></tr></thead>
          <tbody>${check.edits.map(([key, after]) => html`
            <tr data-diff-key=${key} class=${issueFor(key).length ? "has-issue" : ""}>
              <td>${key}</td><td>${current.has(key) ? showValue(current.get(key)) : "(not set)"}</td><td>${showValue(after)}</td>
            </tr>`)}</tbody>
        </table>`}
      ${conflict && html`
        <div class="conflict" role="alert" id="conflict">
          <p><strong>Conflict:</strong> ${conflict.message}</p>
          <p>Changed meanwhile:</p>
          <ul>${conflict.records.map((record) => html`<li>version ${record.version} by ${record.actor} (${record.origin}): ${changedKeys(record)}</li>`)}</ul>
          <button type="button" id="rebase" onClick=${rebase}>Rebase my draft onto the latest version</button>
        </div>`}
      <div class="buttons">
        <button type="button" id="save" class="primary" disabled=${check.state !== "valid" || saving || conflict !== null} onClick=${save}>Save as one version</button>
        <button type="button" onClick=${() => { onIssues([]); onClose(); }}>Cancel</button>
      </div>
    </section>`;
}

function checkText(check) {
  switch (check.state) {
    case "unchanged": return "No change yet.";
    case "unparsable": return `Not readable: ${check.error}`;
    case "checking": return "Validating…";
    case "valid": return `Valid: ${check.edits.length} change(s) ready to save.`;
    case "invalid": return "Invalid: saving is refused until the issues are fixed.";
    default: return `Could not validate: ${check.error}`;
  }
}
