// What the hosts run: the plugins page (this host's plugins: status, staleness, limits, grants,
// last error) and the instances page (the hosts sharing an etcd store and the version each one
// serves). Both lists are asked for again on a live event, every POLL_MS while shown, and on
// "Refresh": a plugin going stale or a peer taking in a change causes no event on this page's stream.
import { html } from "./html.js";
import { useEffect, useState } from "./vendor/hooks.module.js";

const POLL_MS = 2000;

/** `{ data, error, refresh }` of `load()`, asked again on `reloadKey`, every POLL_MS and on refresh. */
export function usePolled(load, reloadKey) {
  const [state, setState] = useState({ data: null, error: null });
  const refresh = () => load().then((data) => setState({ data, error: null }), (error) => setState((previous) => ({ data: previous.data, error })));
  useEffect(() => {
    refresh();
    const timer = setInterval(refresh, POLL_MS);
    return () => clearInterval(timer);
  }, [reloadKey]);
  return Object.assign({ refresh }, state);
}

function RefreshButton({ refresh, what }) {
  return html`<button type="button" class="small refresh" aria-label=${`Refresh ${what}`} onClick=${refresh}>Refresh</button>`;
}

/** A JSON object as `name: value` lines (limits, grants), or why there is none. */
function Fields({ value, none }) {
  if (!value) return html`<span class="muted">${none}</span>`;
  const entries = Object.entries(value).filter(([, item]) => item !== null && !(Array.isArray(item) && item.length === 0));
  if (entries.length === 0) return html`<span class="muted">none</span>`;
  return html`<ul class="fields">${entries.map(([name, item]) => html`<li>${name}: ${Array.isArray(item) ? item.join(", ") : JSON.stringify(item)}</li>`)}</ul>`;
}

const when = (ms) => new Date(ms).toISOString();

export function Plugins({ api, reloadKey }) {
  const { data, error, refresh } = usePolled(() => api.get("/v1/plugins").then((body) => body.plugins), reloadKey);
  if (!data) return html`<p class=${error ? "error" : "muted"} role=${error ? "alert" : "status"}>${error ? error.message : "Loading plugins…"}</p>`;
  return html`
    <section class="plugins" aria-label="Plugins">
      <h2>Plugins of this host <${RefreshButton} refresh=${refresh} what="plugins" /></h2>
      ${error && html`<p class="error" role="alert">Could not refresh: ${error.message}</p>`}
      ${data.length === 0
        ? html`<p id="no-plugins">No plugins in this host's plugins folder.</p>`
        : html`
        <table id="plugins">
          <caption>The running host's plugins (a refused one was never loaded: it has no limits or grants in force)</caption>
          <thead><tr><th scope="col">Plugin</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Limits</th><th scope="col">Grants</th><th scope="col">Last error</th></tr></thead>
          <tbody>${data.map((plugin) => html`
            <tr data-plugin=${plugin.name} class=${plugin.status === "refused" ? "refused" : plugin.stale ? "stale" : ""}>
              <td>${plugin.name} ${plugin.version || ""}<div class="muted">${plugin.file}</div>${plugin.signer && html`<div class="muted">signed by ${plugin.signer}</div>`}</td>
              <td>${plugin.kind || ""}</td>
              <td class="status">${plugin.status}
                ${plugin.stale && html`<div class="warning">stale: serving its ${plugin.stale.from_cache ? "cached" : "last good"} layer since ${when(plugin.stale.since_ms)}</div>`}
                ${plugin.refused_update && html`<div class="error">newer file refused: ${plugin.refused_update}</div>`}</td>
              <td class="limits"><${Fields} value=${plugin.limits} none="not loaded" /></td>
              <td class="grants"><${Fields} value=${plugin.grants} none="not loaded" /></td>
              <td class="last-error">${(plugin.stale && plugin.stale.last_error) || plugin.last_error || ""}</td>
            </tr>`)}</tbody>
        </table>`}
    </section>`;
}

/**
 * A host's state as the registry shows it: degraded when it refused a change its peers accepted,
 * behind while it serves an older version than the newest one listed, else healthy.
 */
function health(instance, newest) {
  if (instance.last_refusal) return ["degraded", `degraded: refused ${instance.last_refusal}`];
  if (instance.version < newest) return ["behind", `behind: serves version ${instance.version} of ${newest}`];
  return ["healthy", "healthy"];
}

export function Instances({ api, reloadKey }) {
  const [seen, setSeen] = useState(new Map());
  const load = async () => {
    try {
      const body = await api.get("/v1/instances");
      const now = new Date().toISOString();
      setSeen((map) => { const next = new Map(map); body.instances.forEach((instance) => next.set(instance.id, now)); return next; });
      return body;
    } catch (error) {
      if (error.code === "no_registry") return { instances: null, why: error.message };
      throw error;
    }
  };
  const { data, error, refresh } = usePolled(load, reloadKey);
  if (!data) return html`<p class=${error ? "error" : "muted"} role=${error ? "alert" : "status"}>${error ? error.message : "Loading instances…"}</p>`;
  if (!data.instances) return html`<p id="no-registry">No instance registry: ${data.why}</p>`;
  const newest = Math.max(0, ...data.instances.map((instance) => instance.version));
  return html`
    <section class="instances" aria-label="Instances">
      <h2>Hosts sharing this store <${RefreshButton} refresh=${refresh} what="instances" /></h2>
      ${error && html`<p class="error" role="alert">Could not refresh (the rows show the last answer): ${error.message}</p>`}
      <table id="instances">
        <caption>A host is listed while it renews its registry lease; "last seen" is when this page last found it listed</caption>
        <thead><tr><th scope="col">Instance</th><th scope="col">Address</th><th scope="col">Version served</th><th scope="col">Plugins</th><th scope="col">State</th><th scope="col">Last seen</th></tr></thead>
        <tbody>${data.instances.map((instance) => {
          const [state, text] = health(instance, newest);
          return html`
            <tr data-instance=${instance.id} class=${state}>
              <td>${instance.id}${instance.address === window.location.host ? html` <span class="muted">(this page's host)</span>` : ""}</td>
              <td>${instance.address || html`<span class="muted">no API</span>`}</td>
              <td class="version">${instance.version}</td>
              <td>${instance.plugins.join(", ") || html`<span class="muted">none</span>`}</td>
              <td class="state">${text}</td>
              <td><time datetime=${seen.get(instance.id)}>${seen.get(instance.id)}</time></td>
            </tr>`;
        })}</tbody>
      </table>
    </section>`;
}
