// Follows the server's change stream of the selected view and hands its events to the page;
// reconnects after a dropped connection (a restarted server), backing off up to 5 s.
import { enc, viewQuery } from "./api.js";

const MAX_BACKOFF_MS = 5000;

/** Starts following; returns a function that stops. `onState(text)` reports the connection. */
export function follow(api, view, onEvent, onState) {
  const controller = new AbortController();
  let backoff = 250;
  const run = async () => {
    while (!controller.signal.aborted) {
      try {
        await api.stream(`/v1/watch/${enc(view.environment)}${viewQuery(view)}`, (name, data) => {
          if (name === "ready") { backoff = 250; onState("live"); }
          onEvent(name, data);
        }, controller.signal);
      } catch (error) {
        if (controller.signal.aborted) return;
        onState(`disconnected (${error.message}); retrying`);
      }
      if (controller.signal.aborted) return;
      await new Promise((resolve) => setTimeout(resolve, backoff));
      backoff = Math.min(backoff * 2, MAX_BACKOFF_MS);
    }
  };
  run();
  return () => controller.abort();
}
