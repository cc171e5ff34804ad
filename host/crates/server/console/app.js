// The Potter Config console: sign-in, view switchers, the configuration tree, editing, history,
// plugins, instances and live notifications. Preact + htm, no build step (docs/CONSOLE.md).
import { render } from "./vendor/preact.module.js";
import { useCallback, useEffect, useRef, useState } from "./vendor/hooks.module.js";
import { html } from "./html.js";
import { Api, enc, viewQuery } from "./api.js";
import { ConfigTree } from "./tree.js";
import { Editor } from "./editor.js";
import { History } from "./history.js";
import { Instances, Plugins } from "./hosts.js";
import { Reviews } from "./reviews.js";
import { follow } from "./live.js";

/** The newest notifications shown (older ones make way: the list stays short above the page). */
const KEPT_NOTIFICATIONS = 3;

function SignIn({ onSignedIn }) {
  const [error, setError] = useState(null);
  const submit = async (event) => {
    event.preventDefault();
    const token = new FormData(event.currentTarget).get("token").trim();
    const api = new Api(token);
    try {
      const session = await api.get("/v1/console/session");
      onSignedIn(api, session);
    } catch (e) {
      setError(e.status === 401 ? "That token is not valid (unknown or revoked)." : e.message);
    }
  };
  return html`
    <main class="signin">
      <h1>Potter Config</h1>
      <form onSubmit=${submit} id="signin">
        <label for="token">API token</label>
        <input id="token" name="token" type="password" autocomplete="off" required placeholder="pct_…" />
        <button type="submit" class="primary">Sign in</button>
        ${error && html`<p class="error" role="alert" id="signin-error">${error}</p>`}
        <p class="muted">The token stays in this tab's memory only; closing or reloading the tab signs out.</p>
      </form>
    </main>`;
}

function Select({ id, label, value, options, none, onChange }) {
  return html`
    <label for=${id}>${label}
      <select id=${id} value=${value} onChange=${(e) => onChange(e.currentTarget.value)}>
        ${none !== undefined && html`<option value="">${none}</option>`}
        ${options.map((option) => html`<option value=${option}>${option}</option>`)}
      </select>
    </label>`;
}

function Notifications({ items, dismiss }) {
  return html`
    <div class="notifications" id="notifications" role="log" aria-live="polite" aria-label="Notifications">
      ${items.map((item) => html`
        <div class=${`toast ${item.kind}`} data-kind=${item.kind}>
          <div class="toast-text">${item.text}</div>
          ${item.lines && html`<ul>${item.lines.map((line) => html`<li>${line}</li>`)}</ul>`}
          <button type="button" class="small" aria-label="Dismiss notification" onClick=${() => dismiss(item.id)}>×</button>
        </div>`)}
    </div>`;
}

function Console({ api, session, signOut }) {
  const [axes, setAxes] = useState(null);
  const [view, setView] = useState(null);
  const [tab, setTab] = useState("config");
  const [tree, setTree] = useState(null);
  const [error, setError] = useState(null);
  const [editing, setEditing] = useState(null);
  const [issues, setIssues] = useState([]);
  const [revealed, setRevealed] = useState(new Map());
  const [layers, setLayers] = useState(new Map());
  const [notifications, setNotifications] = useState([]);
  const [live, setLive] = useState("connecting");
  const [historyKey, setHistoryKey] = useState(0);
  // Counts every event of the stream: the plugins and instances pages ask again on each.
  const [liveKey, setLiveKey] = useState(0);
  const counter = useRef(0);

  const notify = useCallback((item) => {
    const id = ++counter.current;
    setNotifications((items) => [Object.assign({ id }, item), ...items].slice(0, KEPT_NOTIFICATIONS));
  }, []);
  const dismiss = (id) => setNotifications((items) => items.filter((item) => item.id !== id));

  useEffect(() => {
    api.get("/v1/environments").then((body) => {
      setAxes(body);
      setView({ environment: body.environments.includes("development") ? "development" : body.environments[0], service: "", user: "" });
    }, (e) => setError(e.message));
  }, []);

  const loadTree = useCallback(async (target) => {
    try {
      const body = await api.get(`/v1/console/tree/${enc(target.environment)}${viewQuery(target)}`);
      setTree(body);
      setError(null);
      return body;
    } catch (e) {
      setError(e.message);
      return null;
    }
  }, []);

  // A new view: its tree, no revealed secrets or layers kept from the last one, and its stream.
  useEffect(() => {
    if (!view) return undefined;
    setRevealed(new Map());
    setLayers(new Map());
    setEditing(null);
    setIssues([]);
    loadTree(view);
    return follow(api, view, (name, data) => {
      if (name !== "ready") setLiveKey((key) => key + 1);
      if (name === "changed") {
        loadTree(view);
        setHistoryKey((key) => key + 1);
        const keys = (data.changes || []).map((change) => change.key);
        notify({ kind: "changed", text: `Version ${data.version}: ${data.actor} (${data.origin}) changed ${keys.join(", ") || "the view"}` });
      } else if (name === "rejected") {
        notify({ kind: "rejected", text: `A change by ${data.actor} (${data.origin}) was refused; the running configuration stays.`, lines: data.diagnostics });
      } else if (name === "lagged") {
        loadTree(view);
        notify({ kind: "changed", text: `Missed ${data.missed} change(s); now at version ${data.version}` });
      }
    }, setLive);
  }, [view]);

  const issuesByKey = new Map();
  for (const issue of issues) {
    const list = issuesByKey.get(issue.path) || [];
    list.push(issue);
    issuesByKey.set(issue.path, list);
  }

  const actions = {
    revealed,
    layers,
    reveal: async (key) => {
      try {
        const { body } = await api.call("POST", `/v1/console/reveal/${enc(view.environment)}/${enc(key)}${viewQuery(view)}`);
        setRevealed((map) => new Map(map).set(key, body.value));
      } catch (e) { notify({ kind: "error", text: `Reveal ${key}: ${e.message}` }); }
    },
    toggleLayers: async (key) => {
      if (layers.has(key)) { setLayers((map) => { const next = new Map(map); next.delete(key); return next; }); return; }
      try {
        const body = await api.get(`/v1/explain/${enc(view.environment)}/${enc(key)}${viewQuery(view)}`);
        setLayers((map) => new Map(map).set(key, body));
      } catch (e) { notify({ kind: "error", text: `Layers of ${key}: ${e.message}` }); }
    },
    editKey: (key) => setEditing({ key, kind: "leaf" }),
    editSubtree: (key) => setEditing({ key, kind: "subtree" }),
  };

  if (!axes || !view) return html`<p class="muted">${error || "Loading…"}</p>`;
  const change = (part) => (value) => setView(Object.assign({}, view, { [part]: value }));
  return html`
    <header class="top">
      <h1>Potter Config</h1>
      <nav class="switchers" aria-label="View">
        <${Select} id="environment" label="Environment" value=${view.environment} options=${axes.environments} onChange=${change("environment")} />
        <${Select} id="service" label="Service" value=${view.service} options=${axes.services} none="(none)" onChange=${change("service")} />
        <${Select} id="user" label="User" value=${view.user} options=${axes.users} none="(none)" onChange=${change("user")} />
      </nav>
      <div class="who"><span id="who">${session.name} (${session.role})</span> <span class="muted" id="live">${live}</span>
        <button type="button" onClick=${signOut} id="signout">Sign out</button></div>
    </header>
    <nav class="tabs" aria-label="Pages">
      ${[["config", "Configuration"], ["history", "History"], ["rollouts", "Rollouts"], ["plugins", "Plugins"], ["instances", "Instances"]].map(([id, name]) => html`
        <button type="button" id=${`tab-${id}`} aria-current=${tab === id ? "page" : "false"} onClick=${() => setTab(id)}>${name}</button>`)}
    </nav>
    <${Notifications} items=${notifications} dismiss=${dismiss} />
    <main>
      ${error && html`<p class="error" role="alert">${error}</p>`}
      ${tab === "config" && tree && html`
        <div class=${editing ? "split" : ""}>
          <${ConfigTree} key=${tree.view} tree=${tree} session=${session} issuesByKey=${issuesByKey} actions=${actions} />
          ${editing && html`<${Editor} key=${`${editing.kind}:${editing.key}`} api=${api} env=${view.environment} target=${editing} tree=${tree}
            notify=${notify} onIssues=${setIssues} onSaved=${() => { setEditing(null); loadTree(view); }}
            onRebase=${() => loadTree(view)} onClose=${() => setEditing(null)} />`}
        </div>`}
      ${tab === "history" && html`<${History} api=${api} env=${view.environment} session=${session} notify=${notify} reloadKey=${historyKey} />`}
      ${tab === "rollouts" && html`<${Reviews} api=${api} reloadKey=${liveKey} />`}
      ${tab === "plugins" && html`<${Plugins} api=${api} reloadKey=${liveKey} />`}
      ${tab === "instances" && html`<${Instances} api=${api} reloadKey=${liveKey} />`}
    </main>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(null);
  if (!signedIn) return html`<${SignIn} onSignedIn=${(api, session) => setSignedIn({ api, session })} />`;
  return html`<${Console} api=${signedIn.api} session=${signedIn.session} signOut=${() => setSignedIn(null)} />`;
}

render(html`<${App} />`, document.getElementById("app"));
