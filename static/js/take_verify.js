import { startCamera, captureJpeg, cameraErrorMessage } from "./camera.js";

const root = document.getElementById("verify");
const video = document.getElementById("preview");
const button = document.getElementById("capture");
const status = document.getElementById("verify-status");
const proceed = document.getElementById("proceed");

function show(text, kind = "info") {
  status.textContent = text;
  status.className = `msg ${kind}`;
  // After an error the candidate tries again: keep the message and the button on screen.
  if (kind === "error") button.scrollIntoView({ block: "nearest" });
}

// Quick at first (most checks take a second or two), then every 2 s: a hall of
// candidates waiting at once must not spend the server on status polls.
// exams/loadtest/walkin.py polls the same way.
const POLL_GIVE_UP_MS = 90000;
function pollDelay(i) {
  return Math.min(500 * 1.5 ** Math.floor(i / 2), 2000);
}

async function poll() {
  const started = Date.now();
  for (let i = 0; Date.now() - started < POLL_GIVE_UP_MS; i++) {
    await new Promise((r) => setTimeout(r, pollDelay(i)));
    const res = await fetch(root.dataset.statusUrl, { headers: { Accept: "application/json" } });
    const data = await res.json();
    if (data.state === "verified" && data.status === "mismatch_flagged") {
      // Not a success: the candidate may go on, and a proctor checks by hand.
      // A neutral notice, and the candidate moves on when they have read it.
      show(data.message, "info");
      button.hidden = true;
      proceed.hidden = false;
      proceed.focus();
      return;
    }
    if (data.state === "verified") {
      show(data.message || "Identity confirmed.", "success");
      setTimeout(() => (window.location.href = root.dataset.nextUrl), 800);
      return;
    }
    if (data.status !== "pending") {
      // A result, or "" when the server lost the photo: its message says to take another.
      show(data.message, "error");
      button.disabled = false;
      return;
    }
  }
  show("The check is taking longer than expected. Try again.", "error");
  button.disabled = false;
}

button.addEventListener("click", async () => {
  button.disabled = true;
  show("Checking your photo…");
  try {
    const blob = await captureJpeg(video, 0.9);
    const res = await fetch(root.dataset.photoUrl, {
      method: "POST",
      body: blob,
      headers: {
        "Content-Type": "image/jpeg",
        Accept: "application/json",
        "X-CSRFToken": root.querySelector("[name=csrfmiddlewaretoken]").value,
      },
    });
    const data = await res.json();
    if (res.status !== 202) {
      show(data.message || "The photo was refused.", "error");
      button.disabled = false;
      if (data.state) window.location.reload();
      return;
    }
    await poll();
  } catch (err) {
    show(`Could not send the photo: ${err.message}. Check your connection and try again.`, "error");
    button.disabled = false;
  }
});

startCamera(video)
  .then(() => { show("Camera ready. Look at the camera and press the button."); button.disabled = false; })
  .catch((err) => show(cameraErrorMessage(err), "error"));
