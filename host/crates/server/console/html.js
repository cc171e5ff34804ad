// Preact's `h` bound to htm: tagged templates instead of JSX, so the page needs no build step.
// htm parses templates without eval, and Preact renders every interpolated value as a text node.
import { h } from "./vendor/preact.module.js";
import htm from "./vendor/htm.module.js";

export const html = htm.bind(h);
