// Show every <time data-local-time datetime="ISO"> in the reader's own time
// zone. The server writes UTC as the fallback text and keeps it as a tooltip.
const format = new Intl.DateTimeFormat(undefined, {
  weekday: "short",
  year: "numeric",
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZoneName: "short",
});

for (const element of document.querySelectorAll("time[data-local-time]")) {
  const at = new Date(element.dateTime);
  if (Number.isNaN(at.getTime())) continue;
  element.title = element.textContent.trim();
  element.textContent = format.format(at);
}
