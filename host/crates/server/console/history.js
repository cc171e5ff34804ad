// The history of one environment: a timeline of versions, the diff of any version, and rollback
// (admins) with a dry-run preview before it is applied.
import { html } from "./html.js";
import { useEffect, useState } from "./vendor/hooks.module.js";
import { changedKeys, enc, showValue } from "./api.js";
import { issueText } from "./tree.js";

const PAGE = 100;

export function History({ api, env, session, notify, reloadKey }) {
  const [records, setRecords] = useState(null);
  const [error, setError] = useState(null);
  const [shown, setShown] = useState(null);
  const [preview, setPreview] = useState(null);

  const load = () => api.get(`/v1/history?env=${enc(env)}&limit=${PAGE}`).then((page) => { setRecords(page.records); setError(null); }, (e) => setError(e.message));
  useEffect(() => { load(); }, [env, reloadKey]);

  const diff = async (version) => {
    setPreview(null);
    try { setShown(await api.get(`/v1/history/${version}`)); } catch (e) { notify({ kind: "error", text: `Version ${version}: ${e.message}` }); }
  };
  const previewRollback = async (version) => {
    setShown(null);
    try {
      const { body } = await api.call("POST", "/v1/rollback", { body: { env, version, dry_run: true } });
      setPreview(body);
    } catch (e) { notify({ kind: "error", text: `Rollback preview: ${e.message}` }); }
  };
  const rollback = async () => {
    try {
      const { body } = await api.call("POST", "/v1/rollback", { body: { env, version: preview.to_version } });
      notify({ kind: "saved", text: `Rolled back to version ${body.to_version}: ${body.outcome}${body.version ? `, now version ${body.version}` : ""}` });
      setPreview(null);
      load();
    } catch (e) { notify({ kind: "error", text: `Rollback refused: ${e.message}` }); }
  };

  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!records) return html`<p class="muted">Loading history…</p>`;
  return html`
    <section class="history" aria-label=${`History of ${env}`}>
      <h2>History of ${env}</h2>
      <div class="history-grid">
        <ol class="timeline" id="timeline" reversed>
          ${records.map((record) => html`
            <li data-version=${record.version}>
              <div><strong>version ${record.version}</strong> <time datetime=${record.timestamp}>${record.timestamp}</time></div>
              <div>${record.actor} · ${record.origin}${record.reason ? ` · ${record.reason}` : ""}</div>
              <div class="muted">${changedKeys(record)}</div>
              <button type="button" class="small" aria-label=${`Diff of version ${record.version}`} onClick=${() => diff(record.version)}>Diff</button>
              ${session.may_rollback && html`<button type="button" class="small" aria-label=${`Roll back to version ${record.version}`} onClick=${() => previewRollback(record.version)}>Roll back to here…</button>`}
            </li>`)}
        </ol>
        <div class="history-detail">
          ${shown && html`
            <table class="diff" id="version-diff">
              <caption>Version ${shown.version}: ${shown.actor} (${shown.origin})</caption>
              <thead><tr><th scope="col">Key</th><th scope="col">Before</th><th scope="col">After</th></tr></thead>
              <tbody>${(shown.changes || []).map((change) => html`<tr><td>${change.key}</td><td>${showValue(change.before)}</td><td>${showValue(change.after)}</td></tr>`)}</tbody>
            </table>`}
          ${preview && html`
            <div class="preview" id="rollback-preview">
              <h3>Roll back ${env} to version ${preview.to_version}? (dry run)</h3>
              ${preview.valid
                ? html`<table class="diff"><thead><tr><th scope="col">Key</th><th scope="col">Now</th><th scope="col">After the rollback</th></tr></thead>
                    <tbody>${preview.changes.map((change) => html`<tr><td>${change.key}</td><td>${showValue(change.from)}</td><td>${showValue(change.to)}</td></tr>`)}</tbody></table>
                    <button type="button" id="confirm-rollback" class="primary" disabled=${preview.changes.length === 0} onClick=${rollback}>${preview.changes.length === 0 ? "Nothing to change" : "Apply the rollback"}</button>`
                : html`<p class="error">It would not validate:</p><ul class="issues">${(preview.issues.views || []).flatMap((view) => view.issues).map((issue) => html`<li>${issueText(issue)}</li>`)}</ul>`}
              <button type="button" onClick=${() => setPreview(null)}>Cancel</button>
            </div>`}
        </div>
      </div>
    </section>`;
}

export function Plugins({ api }) {
  const [plugins, setPlugins] = useState(null);
  const [error, setError] = useState(null);
  useEffect(() => { api.get("/v1/plugins").then((body) => setPlugins(body.plugins), (e) => setError(e.message)); }, []);
  if (error) return html`<p class="error" role="alert">${error}</p>`;
  if (!plugins) return html`<p class="muted">Loading plugins…</p>`;
  if (plugins.length === 0) return html`<p id="no-plugins">No plugins in this host's plugins folder.</p>`;
  return html`
    <table class="plugins" id="plugins">
      <caption>The running host's plugins</caption>
      <thead><tr><th scope="col">Plugin</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Limits</th><th scope="col">Grants</th><th scope="col">Last error</th></tr></thead>
      <tbody>${plugins.map((plugin) => html`
        <tr data-plugin=${plugin.name}>
          <td>${plugin.name} ${plugin.version || ""}<div class="muted">${plugin.file}</div></td>
          <td>${plugin.kind || ""}</td>
          <td>${plugin.status}${plugin.refused_update ? html`<div class="error">newer file refused: ${plugin.refused_update}</div>` : ""}</td>
          <td>${plugin.limits ? JSON.stringify(plugin.limits) : ""}</td>
          <td>${plugin.grants ? JSON.stringify(plugin.grants) : ""}</td>
          <td>${plugin.last_error || ""}</td>
        </tr>`)}</tbody>
    </table>`;
}
