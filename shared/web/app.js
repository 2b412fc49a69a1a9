// pixelpipe's upload page: submit an image, follow the job, show its outputs.
"use strict";

const api = new URL(".", document.baseURI).pathname.replace(/\/$/, ""); // "/api"
let token = sessionStorage.getItem("pixelpipe.token");

async function devToken() {
  // The local host issues dev tokens; in Azure this endpoint does not exist.
  try {
    const reply = await fetch("/.devhost/token", {method: "POST", headers: {"Content-Type": "application/json"}, body: "{}"});
    if (reply.ok) return (await reply.json()).access_token;
  } catch (e) { /* not the local host */ }
  return null;
}

async function call(path, options = {}) {
  const headers = Object.assign({}, options.headers || {}, token ? {Authorization: `Bearer ${token}`} : {});
  const reply = await fetch(`${api}${path}`, Object.assign({}, options, {headers}));
  if (reply.status === 401) { showAuth(); throw new Error("Please sign in."); }
  const body = reply.status === 204 ? null : await reply.json();
  if (!reply.ok) throw new Error(body && body.error ? `${body.error.code}: ${body.error.message}` : reply.statusText);
  return body;
}

function showAuth() { document.getElementById("auth").hidden = false; }

function el(tag, attrs = {}, text = "") {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text) node.textContent = text;
  return node;
}

function render(job, node) {
  node.querySelector(".job-id").textContent = job.id.slice(0, 8);
  const status = node.querySelector(".status");
  status.textContent = job.status;
  status.className = `status ${job.status}`;
  const progress = node.querySelector("progress");
  progress.max = job.progress.total; progress.value = job.progress.done;
  const list = node.querySelector(".outputs");
  list.replaceChildren();
  for (const op of job.operations) {
    const item = el("li");
    if (op.output) {
      const link = el("a", {href: op.output.url});
      link.append(el("img", {src: op.output.url, alt: op.name, loading: "lazy"}));
      item.append(link, el("div", {}, `${op.name}: ${op.output.width}×${op.output.height} ${op.output.format}, ${Math.round(op.output.bytes / 1024)} kB`));
    } else {
      item.append(el("div", {}, `${op.name}: ${op.status}${op.error ? ` (${op.error.code})` : ""}`));
    }
    list.append(item);
  }
}

async function follow(id) {
  const node = document.getElementById("job-template").content.firstElementChild.cloneNode(true);
  document.getElementById("jobs").prepend(node);
  for (;;) {
    const job = await call(`/jobs/${id}`);
    render(job, node);
    if (["succeeded", "partial", "failed"].includes(job.status)) return;
    await new Promise(r => setTimeout(r, 500));
  }
}

async function submit(event) {
  event.preventDefault();
  const error = document.getElementById("upload-error");
  error.textContent = "";
  const form = new FormData();
  form.append("file", document.getElementById("file").files[0]);
  const spec = document.getElementById("spec").value.trim();
  form.append("spec", spec || JSON.stringify({preset: document.getElementById("preset").value}));
  try {
    const job = await call("/jobs", {method: "POST", body: form, headers: {"Idempotency-Key": crypto.randomUUID()}});
    follow(job.id);
  } catch (e) { error.textContent = e.message; }
}

async function start() {
  const catalogue = await call("/operations");
  const select = document.getElementById("preset");
  for (const name of Object.keys(catalogue.presets)) select.append(el("option", {value: name}, name));
  if (!token) token = await devToken();
  if (!token) showAuth();
  document.getElementById("who").textContent = token ? "signed in" : "";
  document.getElementById("upload").addEventListener("submit", submit);
  document.getElementById("use-token").addEventListener("click", () => {
    token = document.getElementById("token").value.trim();
    sessionStorage.setItem("pixelpipe.token", token);
    document.getElementById("auth").hidden = true;
    document.getElementById("who").textContent = "signed in";
  });
}

start().catch(e => { document.getElementById("upload-error").textContent = e.message; });
