// RenderHub staff pages: the few behaviours htmx does not cover. No build step.
(function () {
  "use strict";

  const STATE_NAMES = { q: "queued", r: "running", d: "done", f: "failed", c: "cancelled" };

  function frameUrl(template, number) {
    // URLs are rendered for frame 0 and the number swapped in: /jobs/5/frames/0/thumbnail/
    return template.replace(/\/0\/((?:thumbnail|preview)\/)?$/, "/" + number + "/$1");
  }

  // --- frame preview dialog (grid cells, failed-frame links, gallery tiles) ---------------

  // The grid's "select this frame" (set up with the grid): whatever opens a frame's preview
  // makes that frame the grid's active one, so the status line names the frame shown.
  let selectInGrid = null;

  function openFrame(number) {
    if (selectInGrid) selectInGrid(number);
    const dialog = document.getElementById("frame-dialog");
    const source = document.querySelector("[data-frame-url]");
    if (!dialog || !source) return;
    const body = document.getElementById("frame-dialog-body");
    fetch(frameUrl(source.dataset.frameUrl, number), { headers: { "HX-Request": "true" } })
      .then((r) => (r.ok ? r.text() : Promise.reject(r.status)))
      .then((html) => {
        body.innerHTML = html;
        if (!dialog.open) dialog.showModal();
      })
      .catch(() => {
        body.textContent = "Could not load frame " + number + ".";
        if (!dialog.open) dialog.showModal();
      });
  }

  document.addEventListener("click", (event) => {
    const trigger = event.target.closest("[data-frame]");
    if (trigger) openFrame(trigger.dataset.frame);
  });

  // --- the frame grid: hover thumbnails, keyboard moves, live state updates ---------------

  // Frame numbers in frame-spec syntax ("1-100,120,130-190x5") to a list of numbers.
  function expandFrames(spec) {
    const numbers = [];
    for (const part of spec.split(",")) {
      const match = /^(\d+)(?:-(\d+)(?:x(\d+))?)?$/.exec(part);
      if (!match) continue;
      const start = parseInt(match[1], 10);
      const end = match[2] ? parseInt(match[2], 10) : start;
      const step = match[3] ? parseInt(match[3], 10) : 1;
      for (let n = start; n <= end; n += step) numbers.push(n);
    }
    return numbers;
  }

  // The server sends one letter per frame (data-cells) and the frame numbers as ranges
  // (data-numbers); the cells are made here, in one string: 100,000 cells in a blink,
  // where sending them would be 3.5 MB.
  function buildCells(grid) {
    const numbers = expandFrames(grid.dataset.numbers || "");
    const states = grid.dataset.cells || "";
    const parts = new Array(numbers.length);
    for (let i = 0; i < numbers.length; i++) {
      const s = states.charAt(i);
      parts[i] = '<i class="' + (STATE_NAMES[s] ? s : "q") + '" data-n="' + numbers[i] + '"></i>';
    }
    grid.innerHTML = parts.join("");
  }

  function setupGrid(grid) {
    buildCells(grid);
    const cells = grid.children;
    const summary = document.getElementById("grid-summary");
    const counts = { q: 0, r: 0, d: 0, f: 0, c: 0 };
    for (let i = 0; i < cells.length; i++) counts[cells[i].className.charAt(0)]++;

    // The line screen readers get for the grid (aria-describedby): counts per state.
    function summarize() {
      if (!summary) return;
      const n = cells.length;
      summary.textContent = n + " frame" + (n === 1 ? "" : "s") + ": " + counts.d + " done, " +
        counts.r + " running, " + counts.q + " queued, " + counts.f + " failed, " +
        counts.c + " cancelled.";
    }
    const tip = document.getElementById("frame-tip");
    const status = document.getElementById("grid-status");
    let active = -1;

    function describe(cell) {
      return "Frame " + cell.dataset.n + ": " + (STATE_NAMES[cell.className.charAt(0)] || "queued");
    }

    function showTip(cell) {
      const rect = cell.getBoundingClientRect();
      tip.innerHTML = "";
      if (cell.classList.contains("d")) {
        const img = document.createElement("img");
        img.src = frameUrl(grid.dataset.thumbUrl, cell.dataset.n);
        img.alt = "Thumbnail of frame " + cell.dataset.n;
        tip.appendChild(img);
      }
      const label = document.createElement("span");
      label.textContent = describe(cell);
      tip.appendChild(label);
      tip.hidden = false;
      const left = Math.min(rect.right + 8, window.innerWidth - 260);
      const top = rect.top + 220 > window.innerHeight ? rect.top - 210 : rect.bottom + 8;
      tip.style.left = Math.max(4, left) + "px";
      tip.style.top = Math.max(4, top) + "px";
    }

    function hideTip() {
      tip.hidden = true;
    }

    function announce() {
      if (active >= 0) status.textContent = describe(cells[active]) + ". Press Enter for a preview.";
    }

    function activate(index, tip = true) {
      if (index < 0 || index >= cells.length) return;
      if (active >= 0 && cells[active]) cells[active].classList.remove("active");
      active = index;
      const cell = cells[index];
      cell.classList.add("active");
      cell.scrollIntoView({ block: "nearest" });
      announce();
      if (tip) showTip(cell);
    }

    // Frame numbers need not be contiguous (1-10,20): find the cell by its number.
    selectInGrid = (number) => {
      const index = Array.prototype.findIndex.call(cells, (c) => c.dataset.n === String(number));
      if (index >= 0 && index !== active) activate(index, false);
    };

    function columns() {
      if (cells.length < 2) return 1;
      const top = cells[0].offsetTop;
      let n = 0;
      while (n < cells.length && cells[n].offsetTop === top) n++;
      return Math.max(1, n);
    }

    grid.addEventListener("mouseover", (event) => {
      if (event.target.parentNode === grid) showTip(event.target);
    });
    grid.addEventListener("mouseleave", hideTip);
    // A press on a cell selects it before the grid takes focus: focusing by mouse must not
    // select frame 1 (or the last keyboard frame) while the preview shows the clicked one.
    grid.addEventListener("mousedown", (event) => {
      if (event.target.parentNode === grid) activate(Array.prototype.indexOf.call(cells, event.target));
    });
    grid.addEventListener("click", (event) => {
      if (event.target.parentNode === grid) openFrame(event.target.dataset.n);
    });
    grid.addEventListener("focus", () => activate(active < 0 ? 0 : active));
    grid.addEventListener("blur", hideTip);
    grid.addEventListener("keydown", (event) => {
      const moves = {
        ArrowRight: 1, ArrowLeft: -1, ArrowDown: columns(), ArrowUp: -columns(),
        Home: -active, End: cells.length - 1 - active,
      };
      if (event.key in moves) {
        event.preventDefault();
        activate(Math.min(cells.length - 1, Math.max(0, active + moves[event.key])));
      } else if ((event.key === "Enter" || event.key === " ") && active >= 0) {
        event.preventDefault();
        openFrame(cells[active].dataset.n);
      }
    });

    function paint(i, want) {
      const cell = cells[i];
      const had = cell && cell.className.charAt(0);
      if (cell && had !== want && STATE_NAMES[want]) {
        counts[had]--;
        counts[want]++;
        cell.className = want + (i === active ? " active" : "");
        if (i === active) announce(); // the status names the frame's state as it is now
      }
    }

    // The live partial carries the cells that changed since the version this page holds
    // (data-changes: "17d 18r"), or, when the server no longer knows that version, one
    // letter per frame (data-states). htmx:load fires on the swapped-in element.
    document.addEventListener("htmx:load", (event) => {
      if (event.target.id !== "job-live") return;
      const changes = event.target.dataset.changes;
      const states = event.target.dataset.states;
      if (changes) {
        for (const word of changes.split(" ")) paint(parseInt(word, 10), word.slice(-1));
      } else if (states && states.length === cells.length) {
        for (let i = 0; i < states.length; i++) paint(i, states.charAt(i));
      }
      if (changes || states) summarize();
    });
  }

  // --- the submit page: scenes ticked in the browser are kept in the Selected list --------

  function setupSubmit(form) {
    const selected = document.getElementById("selected-scenes");
    const note = form.querySelector("[data-empty-note]");

    function chosen() {
      return new Set(Array.from(selected.querySelectorAll("input[name=scenes]"), (i) => i.value));
    }

    function refresh() {
      const urls = chosen();
      // The browser's boxes only mirror the list, so a scene is never submitted twice.
      document.querySelectorAll("#browser .scene-box").forEach((box) => {
        box.removeAttribute("name");
        box.checked = urls.has(box.value);
      });
      note.textContent = urls.size ? "" : "None yet.";
    }

    function add(url, name) {
      if (chosen().has(url)) return;
      const item = document.createElement("li");
      const label = document.createElement("label");
      const box = document.createElement("input");
      box.type = "checkbox";
      box.name = "scenes";
      box.value = url;
      box.checked = true;
      const text = document.createElement("span");
      text.className = "mono";
      text.textContent = name || url;
      label.title = url;
      label.append(box, " ", text);
      item.appendChild(label);
      selected.appendChild(item);
    }

    form.addEventListener("change", (event) => {
      const box = event.target;
      if (box.classList.contains("scene-box")) {
        if (box.checked) add(box.value, box.dataset.label);
        else selected.querySelectorAll("input").forEach((i) => i.value === box.value && i.closest("li").remove());
        refresh();
      } else if (box.name === "scenes" && !box.checked) {
        box.closest("li").remove();
        refresh();
        form.dispatchEvent(new Event("change"));
      }
    });
    document.addEventListener("htmx:load", refresh);
    refresh();
  }

  // --- cheap polls: send back the version a live partial holds --------------------------

  // A polled element with data-etag asks "changed since this?"; the server answers 304
  // (nothing to swap, the element stays) or the new partial with its new data-etag.
  document.addEventListener("htmx:configRequest", (event) => {
    const etag = event.detail.elt.dataset && event.detail.elt.dataset.etag;
    if (etag) event.detail.headers["If-None-Match"] = etag;
  });
  document.addEventListener("htmx:beforeSwap", (event) => {
    if (event.detail.xhr.status === 304) {
      event.detail.shouldSwap = false;
      event.detail.isError = false;
    }
  });

  // --- clocks: "elapsed" counts up and the ETA down in the browser ---------------------

  // The server gives instants (data-since, data-until: ms since the epoch) and the text as
  // it was when rendered; ticking here keeps the job's version free of the minute, so a
  // job many watch does not send them all a new page every minute. The offset corrects a
  // browser clock that differs from the server's (data-now: the server's clock at load).
  const pageNow = document.querySelector("[data-now]");
  const skew = pageNow ? parseInt(pageNow.dataset.now, 10) - Date.now() : 0;

  function formatDuration(seconds) {
    // As the server's format_duration: 0:12, 12:34, 1:02:03, 2d 1:02:03.
    let rest = Math.max(0, Math.floor(seconds));
    const days = Math.floor(rest / 86400);
    rest -= days * 86400;
    const hours = Math.floor(rest / 3600);
    rest -= hours * 3600;
    const minutes = Math.floor(rest / 60);
    const secs = rest - minutes * 60;
    const two = (n) => (n < 10 ? "0" : "") + n;
    if (days) return days + "d " + hours + ":" + two(minutes) + ":" + two(secs);
    return hours ? hours + ":" + two(minutes) + ":" + two(secs) : minutes + ":" + two(secs);
  }

  function tick() {
    const now = Date.now() + (Number.isNaN(skew) ? 0 : skew);
    document.querySelectorAll("time[data-since]").forEach((el) => {
      el.textContent = formatDuration((now - parseInt(el.dataset.since, 10)) / 1000);
    });
    document.querySelectorAll("time[data-until]").forEach((el) => {
      el.textContent = formatDuration(Math.ceil((parseInt(el.dataset.until, 10) - now) / 1000));
    });
  }
  setInterval(tick, 1000);
  document.addEventListener("htmx:load", tick);

  // --- small things ----------------------------------------------------------------------

  document.addEventListener("change", (event) => {
    if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
  });

  document.addEventListener("submit", (event) => {
    const message = event.target.dataset.confirm;
    if (message && !window.confirm(message)) event.preventDefault();
  });

  function stickLogToBottom() {
    const log = document.getElementById("log-text");
    if (log) log.scrollTop = log.scrollHeight;
  }

  document.addEventListener("DOMContentLoaded", () => {
    const grid = document.getElementById("frame-grid");
    if (grid) setupGrid(grid);
    const form = document.getElementById("submit-form");
    if (form) setupSubmit(form);
    stickLogToBottom();
  });

  // Keep a live log scrolled to its end unless the reader scrolled up.
  let logAtBottom = true;
  document.addEventListener("htmx:beforeSwap", () => {
    const log = document.getElementById("log-text");
    if (log) logAtBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  });
  document.addEventListener("htmx:load", (event) => {
    if (event.target.id === "log-panel" && logAtBottom) stickLogToBottom();
  });
})();
