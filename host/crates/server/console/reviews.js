// What is on its way to production: running and past rollouts (their step, cohort and who the
// step reaches) and the change requests waiting for a second person. Read-only here: rollouts are
// advanced and aborted, requests approved, through the CLI or the API (docs/ROLLOUT.md). Both
// lists are asked for again on a live event, every 2 s while shown, and on "Refresh".
import { html } from "./html.js";
import { usePolled } from "./hosts.js";

/** Who a rollout's steps are a share of. */
function cohort(rollout) {
  switch (rollout.cohort.kind) {
    case "users": return "users";
    case "instances": return "hosts";
    case "chosen": return `hosts ${rollout.cohort.instances.join(", ")}`;
    case "label": return `hosts labelled ${rollout.cohort.label}`;
    default: return rollout.cohort.kind;
  }
}

function Reached({ rollout }) {
  if (rollout.state !== "running") return html`<span class="muted">—</span>`;
  const reached = rollout.cohort.kind === "users" ? rollout.reached_users : rollout.reached_instances;
  return reached.length ? html`${reached.join(", ")}` : html`<span class="muted">nobody yet</span>`;
}

export function Reviews({ api, reloadKey }) {
  const load = async () => {
    const [rollouts, changes] = await Promise.all([api.get("/v1/rollouts"), api.get("/v1/changes")]);
    return { rollouts: rollouts.rollouts, changes: changes.requests };
  };
  const { data, error, refresh } = usePolled(load, reloadKey);
  if (!data) return html`<p class=${error ? "error" : "muted"} role=${error ? "alert" : "status"}>${error ? error.message : "Loading rollouts…"}</p>`;
  return html`
    <section class="rollouts" aria-label="Rollouts">
      <h2>Rollouts <button type="button" class="small refresh" aria-label="Refresh rollouts and change requests" onClick=${refresh}>Refresh</button></h2>
      ${error && html`<p class="error" role="alert">Could not refresh (the rows show the last answer): ${error.message}</p>`}
      ${data.rollouts.length === 0
        ? html`<p id="no-rollouts">No rollout yet.</p>`
        : html`
        <table id="rollouts">
          <caption>Newest first; a running rollout's change is live only where its step reaches</caption>
          <thead><tr><th scope="col">Rollout</th><th scope="col">Environment</th><th scope="col">State</th><th scope="col">Step</th><th scope="col">Cohort</th><th scope="col">Reached</th><th scope="col">Bakes until</th></tr></thead>
          <tbody>${data.rollouts.map((rollout) => html`
            <tr data-rollout=${rollout.id} class=${rollout.state}>
              <td>${rollout.id}: ${rollout.title}<div class="muted">${rollout.keys.join(", ")} · by ${rollout.author}</div></td>
              <td>${rollout.env}</td>
              <td class="state">${rollout.state}</td>
              <td class="step">step ${rollout.step} of ${rollout.steps.length} (${rollout.percent}% of ${cohort(rollout)})</td>
              <td class="cohort">${cohort(rollout)}</td>
              <td class="reached"><${Reached} rollout=${rollout} /></td>
              <td>${rollout.bake_ends_at ? html`<time datetime=${rollout.bake_ends_at}>${rollout.bake_ends_at}</time>` : ""}</td>
            </tr>`)}</tbody>
        </table>`}
      <h2>Change requests</h2>
      ${data.changes.length === 0
        ? html`<p id="no-changes">No change request yet.</p>`
        : html`
        <table id="changes">
          <caption>Newest first; an open request goes live once someone other than its author approves it where review is required</caption>
          <thead><tr><th scope="col">Request</th><th scope="col">Environment</th><th scope="col">State</th><th scope="col">Author</th><th scope="col">Change</th></tr></thead>
          <tbody>${data.changes.map((request) => html`
            <tr data-change=${request.id} class=${request.state}>
              <td>${request.id}: ${request.title}</td>
              <td>${request.env}</td>
              <td class="state">${request.state}${request.approver ? html`<div class="muted">by ${request.approver}</div>` : ""}</td>
              <td>${request.author}</td>
              <td class="diff"><ul class="fields">${request.diff.map((change) => html`<li>${change.key}: ${JSON.stringify(change.current)} → ${JSON.stringify(change.proposed)}</li>`)}</ul></td>
            </tr>`)}</tbody>
        </table>`}
    </section>`;
}
