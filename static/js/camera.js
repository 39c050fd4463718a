// Shared webcam helpers. Capture is a canvas draw and a JPEG encode: no model
// runs in the browser, so the exam page stays responsive on any laptop.
export const FRAME_WIDTH = 640;
export const FRAME_HEIGHT = 480;

export async function startCamera(video) {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new Error("This browser cannot use a camera here. Use a current Chrome, Edge, Firefox or Safari over HTTPS.");
  }
  const stream = await navigator.mediaDevices.getUserMedia({
    video: { width: { ideal: FRAME_WIDTH }, height: { ideal: FRAME_HEIGHT }, facingMode: "user" },
    audio: false,
  });
  video.srcObject = stream;
  await video.play().catch(() => {});
  return stream;
}

export function cameraErrorMessage(err) {
  if (err && err.name === "NotAllowedError") return "Camera permission was refused. Allow the camera for this site and reload the page.";
  if (err && err.name === "NotFoundError") return "No camera was found. Connect a webcam and reload the page.";
  if (err && err.name === "NotReadableError") return "The camera is in use by another program. Close it and reload the page.";
  return (err && err.message) || "The camera could not be started.";
}

const canvas = document.createElement("canvas");
canvas.width = FRAME_WIDTH;
canvas.height = FRAME_HEIGHT;

export function captureJpeg(video, quality = 0.7) {
  const ctx = canvas.getContext("2d");
  ctx.drawImage(video, 0, 0, FRAME_WIDTH, FRAME_HEIGHT);
  return new Promise((resolve, reject) =>
    canvas.toBlob((blob) => (blob ? resolve(blob) : reject(new Error("capture failed"))), "image/jpeg", quality),
  );
}
