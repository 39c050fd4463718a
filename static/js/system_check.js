// The system check before exam day: browser features, the camera, and the
// connection's delay and speed against this server. Every line ends in pass,
// fail or (for what only slows things down) warn, with the reason beside it.
import { startCamera, cameraErrorMessage } from "./camera.js";

const root = document.getElementById("system-check");
const summary = document.getElementById("check-summary");
const againButton = document.getElementById("check-again");
const video = document.getElementById("check-preview");
const PINGS = 5;
const TIMEOUT_MS = 20000;
let stream = null;

function report(id, outcome, detail) {
  const line = document.getElementById(id);
  const result = line.querySelector(".result");
  result.className = `result ${outcome}`;
  result.textContent = { pass: "Pass", fail: "Fail", warn: "Warning" }[outcome] || outcome;
  line.querySelector(".detail").textContent = detail;
  line.dataset.outcome = outcome;
}

function checking(id) {
  const line = document.getElementById(id);
  line.querySelector(".result").className = "result";
  line.querySelector(".result").textContent = "Checking…";
  line.querySelector(".detail").textContent = "";
  delete line.dataset.outcome;
}

async function timed(url, upload = null) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), TIMEOUT_MS);
  const options = { cache: "no-store", signal: controller.signal };
  if (upload) {
    options.method = "POST";
    options.body = upload;
    options.headers = { "Content-Type": "application/octet-stream", "X-CSRFToken": root.querySelector("[name=csrfmiddlewaretoken]").value };
  }
  try {
    const started = performance.now();
    const response = await fetch(`${url}?t=${Date.now()}`, options);
    const body = await response.arrayBuffer();
    if (!response.ok) throw new Error(`the server answered ${response.status}`);
    return { ms: performance.now() - started, bytes: upload ? upload.byteLength : body.byteLength };
  } finally {
    clearTimeout(timer);
  }
}

// Random bytes, so nothing on the way can compress them.
function randomBytes(size) {
  const bytes = new Uint8Array(size);
  for (let i = 0; i < size; i += 65536) crypto.getRandomValues(bytes.subarray(i, Math.min(size, i + 65536)));
  return bytes;
}

function reportSpeed(id, { ms, bytes }, minMbps) {
  const mbps = (bytes * 8) / (ms / 1000) / 1e6;
  const shown = mbps >= 10 ? Math.round(mbps) : mbps.toFixed(1);
  report(id, mbps >= minMbps ? "pass" : "warn",
    mbps >= minMbps ? `About ${shown} Mbit/s.` : `About ${shown} Mbit/s; the exam needs about ${minMbps} Mbit/s. Move closer to the router or stop other downloads and uploads.`);
}

function checkBrowser() {
  if ("WebSocket" in window) report("check-websocket", "pass", "Your browser supports live connections.");
  else report("check-websocket", "fail", "This browser cannot keep a live connection. Use a current Chrome, Edge, Firefox or Safari.");
  if (navigator.mediaDevices?.getUserMedia) report("check-camera-api", "pass", "Your browser can use a camera on this site.");
  else report("check-camera-api", "fail", "This browser cannot use a camera here. Use a current Chrome, Edge, Firefox or Safari, over HTTPS.");
  const needed = root.dataset.requiresFullscreen === "true";
  if (document.fullscreenEnabled) report("check-fullscreen", "pass", "Your browser can show the exam in full screen.");
  else report("check-fullscreen", needed ? "fail" : "warn", needed
    ? "This exam is taken in full screen, and this browser cannot go full screen. Use a desktop browser."
    : "This browser cannot go full screen. This exam does not require it.");
}

async function checkCamera() {
  checking("check-camera");
  try {
    if (!stream) stream = await startCamera(video);
    const track = stream.getVideoTracks()[0];
    const settings = track?.getSettings?.() || {};
    const size = settings.width ? ` (${settings.width}×${settings.height})` : "";
    report("check-camera", "pass", `Your camera works${size}. Check that your face is in the picture below, lit from the front.`);
  } catch (err) {
    report("check-camera", "fail", cameraErrorMessage(err));
  }
}

async function checkConnection() {
  checking("check-latency");
  checking("check-upload");
  checking("check-speed");
  const maxLatency = Number(root.dataset.maxLatencyMs);
  const minMbps = Number(root.dataset.minMbps);
  try {
    const times = [];
    for (let i = 0; i < PINGS; i++) times.push((await timed(root.dataset.pingUrl)).ms);
    times.sort((a, b) => a - b);
    const median = Math.round(times[Math.floor(times.length / 2)]);
    report("check-latency", median <= maxLatency ? "pass" : "warn",
      median <= maxLatency ? `${median} ms to the server.` : `${median} ms to the server; over ${maxLatency} ms the proctor's view of you lags.`);
  } catch (err) {
    report("check-latency", "fail", `The server could not be reached: ${err.message}.`);
  }
  try {
    reportSpeed("check-upload", await timed(root.dataset.uploadUrl, randomBytes(Number(root.dataset.downloadBytes) / 2)), minMbps);
  } catch (err) {
    report("check-upload", "fail", `The upload test failed: ${err.message}.`);
  }
  try {
    reportSpeed("check-speed", await timed(root.dataset.downloadUrl), minMbps);
  } catch (err) {
    report("check-speed", "fail", `The download test failed: ${err.message}.`);
  }
}

function summarise() {
  const outcomes = Array.from(root.querySelectorAll(".checks li"), (li) => li.dataset.outcome);
  if (outcomes.includes("fail")) {
    summary.className = "msg error";
    summary.textContent = "Some checks failed. Fix them (the reason is under each) and run the checks again, or contact the person who invited you.";
  } else if (outcomes.includes("warn")) {
    summary.className = "msg warn";
    summary.textContent = "You can take the exam, but some things may be slow (see above).";
  } else {
    summary.className = "msg success";
    summary.textContent = "All checks passed. You are ready for the exam.";
  }
}

async function runAll() {
  againButton.disabled = true;
  summary.className = "msg info";
  summary.textContent = "Running the checks…";
  checkBrowser();
  await checkCamera();
  await checkConnection();
  summarise();
  againButton.disabled = false;
}

againButton.addEventListener("click", runAll);
runAll();
