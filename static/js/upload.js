// Uploads from the storage browser: files, folders (their structure kept) and drops.
// Each file is started on the server, which answers how to send it: in pieces to this
// server (local storage; a lost connection resumes at the offset the server reports), or
// as one signed POST straight to the OSS bucket. No build step.
(function () {
  "use strict";
  if (window.renderhubUpload) return; // the partial may be swapped in more than once
  window.renderhubUpload = true;

  const RETRIES = 5;

  function csrfToken() {
    try {
      return JSON.parse(document.body.getAttribute("hx-headers"))["X-CSRFToken"] || "";
    } catch (e) {
      return "";
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  class Refused extends Error {} // the server said no: retrying will not help

  async function json(response) {
    let body = {};
    try {
      body = await response.json();
    } catch (e) {
      body = {};
    }
    if (response.status >= 500) throw new Error(body.error || "The server failed (" + response.status + ").");
    if (!response.ok && response.status !== 409) {
      throw new Refused(body.error || "The server answered " + response.status + ".");
    }
    return body;
  }

  function call(url, options) {
    const headers = Object.assign({ "X-CSRFToken": csrfToken() }, options.headers || {});
    return fetch(url, Object.assign({ credentials: "same-origin" }, options, { headers }));
  }

  async function sendLocal(start, file, answer, progress) {
    const base = start + encodeURIComponent(answer.upload) + "/";
    let offset = answer.offset;
    let failures = 0;
    while (offset < file.size) {
      try {
        const piece = file.slice(offset, offset + answer.chunk_size);
        const reply = await json(
          await call(base + "?offset=" + offset, {
            method: "PUT",
            body: piece,
            headers: { "Content-Type": "application/octet-stream" },
          })
        );
        offset = reply.offset; // on 409 (a piece already there) the server says where to go on
        failures = 0;
        progress(offset);
      } catch (error) {
        if (error instanceof Refused || ++failures > RETRIES) throw error;
        await sleep(500 * 2 ** failures);
        try {
          offset = (await json(await call(base, { method: "GET" }))).offset;
        } catch (e) {
          /* still offline: try the piece again after the next pause */
        }
      }
    }
    // Completing twice is harmless (the server answers the same), so a lost answer is retried.
    for (let attempt = 1; ; attempt++) {
      try {
        const done = await call(base + "complete/", { method: "POST" });
        const reply = await json(done);
        if (!done.ok) throw new Refused(reply.error || "The upload could not be completed.");
        return reply.file;
      } catch (error) {
        if (error instanceof Refused || attempt > RETRIES) throw error;
        await sleep(500 * 2 ** attempt);
      }
    }
  }

  function sendOSS(answer, file, progress) {
    return new Promise((resolve, reject) => {
      const form = new FormData();
      Object.entries(answer.fields).forEach(([name, value]) => form.append(name, value));
      form.append("file", file); // OSS wants the file last
      const xhr = new XMLHttpRequest();
      xhr.open("POST", answer.url);
      xhr.upload.onprogress = (event) => progress(event.loaded);
      xhr.onload = () => {
        if (xhr.status >= 200 && xhr.status < 300) return resolve(answer.file);
        const code = /<Code>([^<]*)<\/Code>/.exec(xhr.responseText || "");
        reject(new Refused("OSS refused the upload (" + xhr.status + (code ? " " + code[1] : "") + ")."));
      };
      xhr.onerror = () => reject(new Error("The bucket could not be reached (is CORS set up?)."));
      xhr.send(form);
    });
  }

  function row(box, path, size) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.className = "name";
    name.textContent = path;
    const bar = document.createElement("progress");
    bar.max = Math.max(size, 1);
    bar.value = 0;
    const status = document.createElement("span");
    status.className = "status muted small";
    status.textContent = "waiting";
    item.append(name, " ", bar, " ", status);
    box.querySelector(".upload-list").appendChild(item);
    return {
      progress(done) {
        bar.value = done;
        status.textContent = Math.floor((100 * done) / Math.max(size, 1)) + " %";
      },
      finish(text, failed) {
        bar.value = bar.max;
        status.textContent = text;
        item.classList.add(failed ? "failed" : "done");
      },
    };
  }

  async function uploadOne(box, file, path) {
    const line = row(box, path, file.size);
    try {
      const start = box.dataset.uploadStart;
      const form = new URLSearchParams({ folder: box.dataset.folder, path: path, size: String(file.size) });
      const answer = await json(await call(start, { method: "POST", body: form }));
      line.progress(0);
      if (answer.kind === "oss") await sendOSS(answer, file, line.progress);
      else await sendLocal(start, file, answer, line.progress);
      line.finish("uploaded", false);
      return true;
    } catch (error) {
      line.finish("failed: " + error.message, true);
      return false;
    }
  }

  async function uploadAll(box, items) {
    if (!items.length) return;
    box.classList.add("busy");
    let uploaded = 0;
    for (const [file, path] of items) {
      if (await uploadOne(box, file, path)) uploaded++;
    }
    box.classList.remove("busy");
    const summary = document.createElement("li");
    summary.className = "summary";
    summary.textContent = uploaded + " of " + items.length + " file" + (items.length === 1 ? "" : "s") + " uploaded.";
    box.querySelector(".upload-list").appendChild(summary);
    // Show the new files: reload the pane in place, keeping this upload report beside it.
    if (uploaded && window.htmx) {
      const report = box.querySelector(".upload-list").cloneNode(true);
      window.htmx.ajax("GET", box.dataset.refresh, { target: "#browser", swap: "outerHTML" }).then(() => {
        const list = document.querySelector("#browser .upload-list");
        if (list) list.replaceWith(report);
      });
    }
  }

  // --- picking: file and folder inputs --------------------------------------------------

  document.addEventListener("change", (event) => {
    const input = event.target;
    if (!input.matches || !input.matches("[data-upload-input]")) return;
    event.stopPropagation(); // not a change of the submit form (no estimate to refresh)
    const box = input.closest(".upload");
    // A folder pick gives "folder/sub/file" in webkitRelativePath: the structure is kept.
    const items = Array.from(input.files, (file) => [file, file.webkitRelativePath || file.name]);
    input.value = "";
    uploadAll(box, items);
  }, true);

  // --- dropping files and folders on the browser pane -----------------------------------

  function readAll(reader) {
    return new Promise((resolve) => {
      const entries = [];
      const next = () =>
        reader.readEntries((batch) => {
          if (!batch.length) return resolve(entries);
          entries.push(...batch);
          next();
        }, () => resolve(entries));
      next();
    });
  }

  async function walk(entry, prefix, out) {
    if (entry.isFile) {
      const file = await new Promise((resolve) => entry.file(resolve, () => resolve(null)));
      if (file) out.push([file, prefix + file.name]);
    } else if (entry.isDirectory) {
      for (const child of await readAll(entry.createReader())) {
        await walk(child, prefix + entry.name + "/", out);
      }
    }
  }

  function dropBox(event) {
    const pane = event.target.closest && event.target.closest("#browser");
    return pane ? pane.querySelector(".upload") : null;
  }

  document.addEventListener("dragover", (event) => {
    const box = dropBox(event);
    if (!box) return;
    event.preventDefault();
    box.closest("#browser").classList.add("drop-target");
  });

  document.addEventListener("dragleave", (event) => {
    const pane = event.target.closest && event.target.closest("#browser");
    if (pane && !pane.contains(event.relatedTarget)) pane.classList.remove("drop-target");
  });

  document.addEventListener("drop", async (event) => {
    const box = dropBox(event);
    if (!box) return;
    event.preventDefault();
    box.closest("#browser").classList.remove("drop-target");
    const entries = Array.from(event.dataTransfer.items || [])
      .map((item) => (item.webkitGetAsEntry ? item.webkitGetAsEntry() : null))
      .filter(Boolean);
    const items = [];
    if (entries.length) {
      for (const entry of entries) await walk(entry, "", items);
    } else {
      Array.from(event.dataTransfer.files || []).forEach((file) => items.push([file, file.name]));
    }
    uploadAll(box, items);
  });
})();
