// The reviewer's workbench: the timeline strip, clips as flip-books, and
// decisions without a reload. Every form also works without this script;
// here the same forms are posted with fetch and the server answers in JSON.
// Positions are set through element.style, which a CSP without
// 'unsafe-inline' for styles still allows (unlike style="" attributes).
import { formatClock } from "./clock.js";

const root = document.getElementById("workbench");
const statusLine = document.getElementById("workbench-status");
const events = Array.from(document.querySelectorAll("#events li.event"));
let current = -1;
const reducedMotion = window.matchMedia("(prefers-reduced-motion: reduce)");

function say(text, kind = "info") {
  statusLine.textContent = text;
  statusLine.className = `msg ${kind}`;
  statusLine.hidden = false;
}

// ---------------------------------------------------------------- the strip

function layoutStrip() {
  const strip = document.getElementById("strip");
  if (!strip) return;
  const start = Date.parse(strip.dataset.start);
  const span = Math.max(1000, Date.parse(strip.dataset.end) - start);
  const bars = Array.from(strip.querySelectorAll(".bar"));
  // Overlapping events go on separate lanes, so that none hides another.
  const laneEnds = [];
  for (const bar of bars) {
    const from = Date.parse(bar.dataset.start);
    const to = Math.max(Date.parse(bar.dataset.end), from);
    const left = ((from - start) / span) * 100;
    const width = Math.max(((to - from) / span) * 100, 0.6);
    let lane = laneEnds.findIndex((end) => end <= left);
    if (lane < 0) lane = laneEnds.length;
    laneEnds[lane] = left + width + 0.4;
    bar.style.left = `${Math.min(left, 99.4)}%`;
    bar.style.width = `${width}%`;
    bar.dataset.lane = String(lane);
    bar.style.top = `${lane * 1.6}rem`;
  }
  strip.style.height = `${Math.max(1, laneEnds.length) * 1.6 + 0.4}rem`;
  strip.addEventListener("click", (e) => {
    const bar = e.target.closest(".bar");
    if (!bar) return;
    e.preventDefault();
    select(events.findIndex((li) => li.dataset.event === bar.dataset.event));
  });
}

function barOf(li) {
  return document.querySelector(`#strip .bar[data-event="${li.dataset.event}"]`);
}

// ---------------------------------------------------------------- selection

function select(index) {
  if (index < 0 || index >= events.length) return;
  if (current >= 0) {
    events[current].classList.remove("selected");
    barOf(events[current])?.classList.remove("selected");
  }
  current = index;
  const li = events[index];
  li.classList.add("selected");
  barOf(li)?.classList.add("selected");
  const box = li.querySelector("details.evidence-box");
  if (box) box.open = true;
  li.scrollIntoView({ block: "nearest", behavior: reducedMotion.matches ? "instant" : "smooth" });
  li.focus({ preventScroll: true });
  history.replaceState(null, "", `#${li.id}`);
}

// ---------------------------------------------------------------- flip-books

function setupClip(figure) {
  const frames = Array.from(figure.querySelectorAll(".clip-frames img"));
  const button = figure.querySelector(".clip-play");
  const at = figure.querySelector(".clip-at");
  if (frames.length < 2 || !button) return;
  figure.classList.add("flipbook");
  let shown = 0;
  let timer = null;
  const show = (i) => {
    frames[shown].classList.remove("shown");
    shown = (i + frames.length) % frames.length;
    frames[shown].classList.add("shown");
    at.textContent = `${formatClock(frames[shown].dataset.at, "time")} · frame ${shown + 1} of ${frames.length}`;
  };
  const stop = () => { clearInterval(timer); timer = null; button.textContent = "Play"; };
  frames[0].classList.add("shown");
  show(Math.floor((frames.length - 1) / 2)); // start on the frame that opened the event, roughly
  button.hidden = false;
  button.addEventListener("click", () => {
    if (timer) return stop();
    button.textContent = "Pause";
    timer = setInterval(() => show(shown + 1), Number(figure.dataset.interval) || 500);
  });
  figure.querySelector(".clip-frames").addEventListener("click", () => { stop(); show(shown + 1); });
}

// ---------------------------------------------------------------- decisions

async function post(form, submitter) {
  const body = new FormData(form);
  if (submitter && submitter.name) body.set(submitter.name, submitter.value);
  const response = await fetch(form.action, {
    method: "POST",
    body,
    headers: { Accept: "application/json", "X-CSRFToken": body.get("csrfmiddlewaretoken") || "" },
    credentials: "same-origin",
  });
  const data = await response.json().catch(() => ({ error: `The server answered ${response.status}.` }));
  if (!response.ok || data.error) throw new Error(data.error || `The server answered ${response.status}.`);
  return data;
}

function showEvent(update) {
  const li = document.getElementById(`event-${update.id}`);
  if (!li) return;
  li.dataset.status = update.review_status;
  const pill = li.querySelector("[data-role=status]");
  pill.textContent = update.review_status;
  pill.className = `pill review-${update.review_status}`;
  for (const button of li.querySelectorAll("form.decide button")) {
    const on = (button.value === "confirm" && update.review_status === "confirmed")
      || (button.value === "dismiss" && update.review_status === "dismissed");
    button.classList.toggle("primary", on);
  }
  const bar = barOf(li);
  if (bar) {
    bar.classList.remove("review-pending", "review-confirmed", "review-dismissed");
    bar.classList.add(`review-${update.review_status}`);
  }
}

function showSession(data) {
  document.getElementById("risk-score").textContent = `Risk score: ${data.risk} / 100`;
  const lines = document.getElementById("risk-lines");
  lines.replaceChildren(...data.risk_lines.map((line) => {
    const li = document.createElement("li");
    const points = document.createElement("strong");
    points.textContent = `+${line.points}`;
    li.append(points, ` ${line.reason}`);
    return li;
  }));
  if (!data.risk_lines.length) {
    const li = document.createElement("li");
    li.className = "muted none";
    li.textContent = "Nothing counts towards the score.";
    lines.append(li);
  }
  const state = document.getElementById("session-state");
  state.textContent = data.state_label;
  state.className = `state state-${data.state}`;
  const decision = document.getElementById("decision-state");
  decision.textContent = data.decision_state_label;
  decision.className = `decision decision-${data.decision_state}`;
  for (const update of data.events || []) showEvent(update);
  if (data.decisions_locked) {
    root.dataset.locked = "";
    const locked = document.getElementById("decisions-locked");
    locked.textContent = data.decisions_locked;
    locked.hidden = false;
  }
  const form = document.getElementById("session-decide");
  if (data.result && form) {
    if (data.state !== "submitted" && data.state !== "terminated") {
      form.remove();
    } else {
      // My vote is in; only a different reviewer can add the second one.
      form.querySelector("button[value=violation]").remove();
      const note = document.createElement("p");
      note.className = "msg info";
      note.textContent = `Violation proposed by ${data.votes.join(", ")}. A second, different reviewer must confirm.`;
      form.querySelector(".msg.info")?.remove();
      form.querySelector(".row").before(note);
    }
  }
}

async function decide(form, submitter) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const data = await post(form, submitter);
    showSession(data);
    const changed = (data.events || []).length;
    if (data.message) say(data.message, "success");
    else if (form.dataset.kind === "bulk") say(`${changed} event(s) now ${submitter.value === "confirm" ? "confirmed" : "dismissed"}.`, "success");
    else if (changed) say(`${data.events[0].label}: ${data.events[0].review_status}.`, "success");
    addDecisionLine(form, submitter);
    return true;
  } catch (err) {
    say(err.message, "error");
    return false;
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

function addDecisionLine(form, submitter) {
  const list = document.getElementById("decisions");
  list.querySelector(".none")?.remove();
  const li = document.createElement("li");
  // The same words as the server's list: the decision's label (on its button), the event's label.
  const decision = submitter.dataset.label || submitter.value;
  const what = form.dataset.kind === "event" ? ` ${form.closest("li.event").querySelector(".etype").textContent}`
    : form.dataset.kind === "bulk" ? ` every ${form.querySelector(".bulk-type").textContent}` : "";
  li.textContent = `just now, you: ${decision}${what}`;
  list.append(li);
}

document.addEventListener("submit", (e) => {
  const form = e.target;
  if (!form.dataset.kind || !root.contains(form)) return;
  e.preventDefault();
  decide(form, e.submitter);
});

function decideCurrent(value) {
  if (current < 0) select(0);
  const li = events[current];
  if (!li) return;
  const form = li.querySelector("form.decide");
  decide(form, form.querySelector(`button[value=${value}]`)).then((ok) => {
    if (ok && current < events.length - 1) select(current + 1);
  });
}

// ---------------------------------------------------------------- keys

document.addEventListener("keydown", (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.target.closest("input, textarea, select, [contenteditable]")) return;
  const actions = {
    j: () => select(current + 1),
    k: () => select(Math.max(0, current - 1)),
    c: () => decideCurrent("confirm"),
    d: () => decideCurrent("dismiss"),
    n: () => { window.location.assign(document.getElementById("next-session").href); },
  };
  const action = actions[e.key];
  if (!action) return;
  e.preventDefault();
  action();
});

layoutStrip();
document.querySelectorAll("figure.clip").forEach(setupClip);
const fromHash = events.findIndex((li) => `#${li.id}` === window.location.hash);
if (fromHash >= 0) select(fromHash);
root.dataset.ready = "1";
