// Roster import in the admin: parse the CSV on the server, then send one row at
// a time with its photo, so progress is real and a bad row costs only itself.
(function () {
  "use strict";
  const root = document.getElementById("roster-import");
  if (!root) return;
  const form = document.getElementById("roster-form");
  const csvInput = document.getElementById("roster-csv");
  const photoInput = document.getElementById("roster-photos");
  const startButton = document.getElementById("roster-start");
  const errorBox = document.getElementById("roster-error");
  const progress = document.getElementById("roster-progress");
  const bar = document.getElementById("roster-bar");
  const status = document.getElementById("roster-status");
  const results = document.getElementById("roster-results");
  const tbody = results.querySelector("tbody");
  const download = document.getElementById("roster-download");
  const csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  const maxPhotoBytes = Number(root.dataset.maxPhotoBytes);
  let running = false;

  function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = !message;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST", body, credentials: "same-origin", headers: { "X-CSRFToken": csrf },
    });
    let data = null;
    try { data = await response.json(); } catch (e) { /* not JSON: handled below */ }
    if (!response.ok) {
      throw new Error((data && data.error) || `the server answered ${response.status}`);
    }
    return data;
  }

  function addResult(row, result) {
    const tr = document.createElement("tr");
    tr.className = result.error ? "roster-failed" : result.status === "existing" ? "roster-existing" : "roster-ok";
    for (const text of [String(row.line), row.name, row.email]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    const td = document.createElement("td");
    if (result.error) {
      td.textContent = result.error;
    } else {
      if (result.status === "existing") {
        // Already on the exam from an earlier import: nothing was changed.
        td.append("already on the exam, unchanged: ");
      }
      const link = document.createElement("a");
      link.href = result.link;
      link.textContent = result.photo ? "invitation link" : "invitation link (no photo: reference taken at the exam)";
      td.appendChild(link);
    }
    tr.appendChild(td);
    tbody.appendChild(tr);
  }

  // A cell a spreadsheet would run as a formula (=HYPERLINK(...) in a name)
  // gets an apostrophe in front, as the server's CSV export does.
  function csvCell(value) {
    let text = String(value == null ? "" : value);
    if (/^[=+\-@\t\r]/.test(text)) text = `'${text}`;
    return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
  }

  function offerDownload(lines) {
    const text = lines.map((cells) => cells.map(csvCell).join(",")).join("\r\n") + "\r\n";
    if (download.href.startsWith("blob:")) URL.revokeObjectURL(download.href);
    download.href = URL.createObjectURL(new Blob([text], { type: "text/csv" }));
  }

  async function importRow(row, photos) {
    const body = new FormData();
    body.append("name", row.name);
    body.append("email", row.email);
    if (row.photo) {
      const file = photos.get(row.photo) || photos.get(row.photo.split(/[\\/]/).pop());
      if (!file) return { error: `photo ${row.photo} was not among the selected photos` };
      if (file.size > maxPhotoBytes) return { error: `photo ${row.photo} is larger than ${maxPhotoBytes / 1048576} MB` };
      body.append("photo", file, file.name);
    }
    try {
      return await post(root.dataset.rowUrl, body);
    } catch (e) {
      return { error: `not imported: ${e.message}. Run the import again to retry this row.` };
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (running) return;
    showError("");
    if (!csvInput.files.length) { showError("Choose the roster CSV first."); return; }
    running = true;
    startButton.disabled = true;
    try {
      const parseBody = new FormData();
      parseBody.append("csv", csvInput.files[0]);
      let rows;
      try {
        rows = (await post(root.dataset.parseUrl, parseBody)).rows;
      } catch (e) {
        showError(`The CSV was refused: ${e.message}. Nothing was imported.`);
        return;
      }
      const photos = new Map(Array.from(photoInput.files, (file) => [file.name, file]));
      tbody.replaceChildren();
      results.hidden = false;
      progress.hidden = false;
      bar.max = rows.length;
      bar.value = 0;
      const lines = [["line", "name", "email", "link", "error"]];
      const counts = { new: 0, existing: 0, refused: 0 };
      for (const [index, row] of rows.entries()) {
        status.textContent = `Importing row ${index + 1} of ${rows.length}: ${row.name || row.email}…`;
        const result = await importRow(row, photos);
        if (result.error) counts.refused += 1;
        else if (result.status === "existing") counts.existing += 1;
        else counts.new += 1;
        addResult(row, result);
        lines.push([row.line, row.name, row.email, result.link || "", result.error || ""]);
        bar.value = index + 1;
      }
      // The same words as import_roster's summary (exams.services.RosterSummary).
      status.textContent = `Done: ${counts.new} new, ${counts.existing} already on the exam, ${counts.refused} refused` +
        (counts.refused ? " (the reasons are listed below; fix them and import the file again)." : ".");
      offerDownload(lines);
    } finally {
      running = false;
      startButton.disabled = false;
    }
  });
})();
