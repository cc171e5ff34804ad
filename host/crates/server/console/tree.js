// The effective configuration as a tree: collapsed subtrees render nothing below them, and a
// search lists at most SEARCH_LIMIT matches, so a tree of 10,000 leaves stays responsive.
import { html } from "./html.js";
import { useMemo, useState } from "./vendor/hooks.module.js";
import { showValue } from "./api.js";

const SEARCH_LIMIT = 200;
/** Trees up to this many leaves open fully expanded; larger ones open with their top level only. */
const EXPAND_ALL_BELOW = 200;

/** Nested nodes `{ name, path, children: Map, leaf }` from the sorted leaves. */
export function buildTree(leaves) {
  const root = { name: "", path: "", children: new Map(), leaf: null, count: 0 };
  for (const leaf of leaves) {
    let node = root;
    node.count++;
    const segments = leaf.key.split(".");
    segments.forEach((segment, index) => {
      const path = segments.slice(0, index + 1).join(".");
      if (!node.children.has(segment)) node.children.set(segment, { name: segment, path, children: new Map(), leaf: null, count: 0 });
      node = node.children.get(segment);
      node.count++;
    });
    node.leaf = leaf;
  }
  return root;
}

/** Where a leaf's value was set, as one line (file:line:col, variable, override with its version and actor, plugin, default). */
export function provenance(leaf) {
  const source = leaf.source;
  if (!source) return "no recorded source";
  const where = source.source || source.layer;
  const by = leaf.set_by;
  return by ? `${where} · version ${by.version} by ${by.actor} (${by.origin})` : where;
}

export function ConfigTree({ tree, session, issuesByKey, actions }) {
  const [query, setQuery] = useState("");
  const [expanded, setExpanded] = useState(() => new Set());
  const [expandAll, setExpandAll] = useState(tree.leaves.length <= EXPAND_ALL_BELOW);
  const root = useMemo(() => buildTree(tree.leaves), [tree]);
  const isOpen = (path) => expandAll !== expanded.has(path);
  const toggle = (path) => {
    const next = new Set(expanded);
    next.has(path) ? next.delete(path) : next.add(path);
    setExpanded(next);
  };
  const needle = query.trim().toLowerCase();
  const matches = useMemo(() => {
    if (!needle) return null;
    return tree.leaves.filter((leaf) => leaf.key.toLowerCase().includes(needle) || (!leaf.secret && showValue(leaf.value).toLowerCase().includes(needle)));
  }, [tree, needle]);
  const row = (leaf, label) => html`<${LeafRow} key=${leaf.key} leaf=${leaf} label=${label} session=${session} issues=${issuesByKey.get(leaf.key)} actions=${actions} />`;
  return html`
    <section class="tree" aria-label="Effective configuration">
      <div class="tree-tools">
        <label for="search">Search keys and values</label>
        <input id="search" type="search" value=${query} onInput=${(e) => setQuery(e.currentTarget.value)} placeholder="e.g. timeout" />
        <button type="button" onClick=${() => { setExpandAll(!expandAll); setExpanded(new Set()); }}>${expandAll ? "Collapse all" : "Expand all"}</button>
        <span class="muted">${tree.leaves.length} leaves · ${tree.view} · version ${tree.version}</span>
      </div>
      ${matches
        ? html`<p class="muted" id="search-count">${matches.length} match${matches.length === 1 ? "" : "es"}${matches.length > SEARCH_LIMIT ? ` (first ${SEARCH_LIMIT} shown: refine the search)` : ""}</p>
            <ul class="leaves" role="list">${matches.slice(0, SEARCH_LIMIT).map((leaf) => row(leaf, leaf.key))}</ul>`
        : html`<ul class="nodes" role="tree">${[...root.children.values()].map((node) => html`<${Node} key=${node.path} node=${node} isOpen=${isOpen} toggle=${toggle} row=${row} session=${session} actions=${actions} />`)}</ul>`}
    </section>`;
}

function Node({ node, isOpen, toggle, row, session, actions }) {
  if (node.leaf && node.children.size === 0) return row(node.leaf, node.name);
  const open = isOpen(node.path);
  return html`
    <li class="node" role="treeitem" aria-expanded=${open ? "true" : "false"} data-node=${node.path}>
      <div class="node-head">
        <button type="button" class="toggle" aria-label=${`${open ? "Collapse" : "Expand"} ${node.path}`} onClick=${() => toggle(node.path)}>${open ? "▾" : "▸"}</button>
        <span class="name">${node.name}</span>
        <span class="muted">${node.count} ${node.count === 1 ? "leaf" : "leaves"}</span>
        ${session.may_write && html`<button type="button" class="small" aria-label=${`Edit subtree ${node.path}`} onClick=${() => actions.editSubtree(node.path)}>Edit as text</button>`}
      </div>
      ${open && html`<ul role="group">${[...node.children.values()].map((child) => html`<${Node} key=${child.path} node=${child} isOpen=${isOpen} toggle=${toggle} row=${row} session=${session} actions=${actions} />`)}</ul>`}
    </li>`;
}

function LeafRow({ leaf, label, session, issues, actions }) {
  const revealed = actions.revealed.get(leaf.key);
  const shadowed = actions.layers.get(leaf.key);
  // Layers of a secret are asked for only where the server redacts them, or once revealed.
  const mayExplain = !leaf.secret || !session.may_reveal || revealed !== undefined;
  return html`
    <li class=${`leaf${issues ? " has-issue" : ""}`} role="treeitem" data-key=${leaf.key}>
      <div class="leaf-head">
        <span class="name" title=${leaf.key}>${label}</span>
        ${leaf.secret
          ? html`<span class="value secret">${revealed !== undefined ? showValue(revealed) : "•••••• (secret)"}</span>
              ${session.may_reveal && revealed === undefined && html`<button type="button" class="small reveal" aria-label=${`Reveal secret ${leaf.key}`} onClick=${() => actions.reveal(leaf.key)}>Reveal</button>`}`
          : html`<span class="value">${showValue(leaf.value)}</span>`}
        <span class="source" title="Where the value was set">${provenance(leaf)}</span>
        ${mayExplain && html`<button type="button" class="small" aria-expanded=${shadowed ? "true" : "false"} aria-label=${`Layers of ${leaf.key}`} onClick=${() => actions.toggleLayers(leaf.key)}>Layers</button>`}
        ${session.may_write && !leaf.secret && html`<button type="button" class="small edit" aria-label=${`Edit ${leaf.key}`} onClick=${() => actions.editKey(leaf.key)}>Edit</button>`}
      </div>
      ${issues && html`<ul class="issues">${issues.map((issue) => html`<li class=${`issue ${issue.severity}`}>${issueText(issue)}</li>`)}</ul>`}
      ${shadowed && html`<${Layers} explanation=${shadowed} />`}
    </li>`;
}

function Layers({ explanation }) {
  return html`
    <table class="layers">
      <caption>Every layer's say (lowest precedence first); environment variable ${explanation.env_var}</caption>
      <thead><tr><th scope="col">Layer</th><th scope="col">Where</th><th scope="col">Status</th><th scope="col">Value</th></tr></thead>
      <tbody>${explanation.layers.map((layer) => html`
        <tr class=${layer.won ? "won" : "shadowed"}>
          <td>${layer.layer}${layer.won ? " (wins)" : ""}</td><td>${layer.source}</td><td>${layer.status}</td>
          <td>${layer.value === null || layer.value === undefined ? "" : showValue(layer.value)}</td>
        </tr>`)}</tbody>
    </table>`;
}

/** One issue as text: what, the rule, and the schema or plugin that raised it. */
export function issueText(issue) {
  const where = issue.schema_location ? ` in ${issue.schema_location}` : "";
  return `${issue.path || "(root)"}: ${issue.message} (${issue.rule}${where})`;
}
