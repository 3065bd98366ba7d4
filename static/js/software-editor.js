// Software editors (images/editors.py): add, remove and reorder rows, keep the list of
// this software's variables current, and move between the rows and the advanced JSON box.
// The page works without this file: rows are plain inputs read in page order.
(function () {
  "use strict";

  const TEXT_COLUMNS = ["name", "default", "choices", "help"];

  function scope(el) {
    // One software: an admin inline's block, else the whole form.
    return el.closest(".inline-related") || el.closest("form") || document;
  }

  function liveRows(editor) {
    return Array.from(editor.querySelectorAll("[data-rows] > [data-row]:not([data-prototype])"));
  }

  function renumber(editor) {
    liveRows(editor).forEach(function (row, i) {
      const num = row.querySelector(".sw-num");
      if (num) num.textContent = String(i + 1);
      const arg = row.querySelector(".sw-arg");
      if (arg) arg.setAttribute("aria-label", "Argument " + (i + 1));
    });
  }

  function newRow(editor) {
    const prototype = editor.querySelector("[data-prototype]");
    const row = prototype.cloneNode(true);
    row.removeAttribute("data-prototype");
    row.hidden = false;
    row.querySelectorAll("input, select, textarea").forEach(function (field) {
      field.disabled = false;
    });
    row.querySelectorAll("[data-js-only]").forEach(function (el) { el.hidden = false; });
    prototype.parentNode.insertBefore(row, prototype);
    return row;
  }

  function field(row, column) {
    return row.querySelector("[name$='__" + column + "']");
  }

  // --- own variables --------------------------------------------------------------------

  function refreshVariables(el) {
    const root = scope(el);
    const params = root.querySelector("[data-editor=parameters]");
    const list = root.querySelector("[data-own-variables]");
    if (!params || !list) return;
    const items = [];
    liveRows(params).forEach(function (row) {
      const name = row.querySelector("[data-param-name]").value.trim();
      if (name) items.push([name, row.querySelector("[data-param-help]").value.trim()]);
    });
    list.replaceChildren();
    if (!items.length) {
      const p = document.createElement("p");
      p.className = "helptext";
      p.textContent = "None yet. Each parameter you add below becomes a variable of the same name.";
      list.append(p);
    }
    items.forEach(function (item) {
      const div = document.createElement("div");
      const code = document.createElement("code");
      code.textContent = "{" + item[0] + "}";
      div.append(code, " " + item[1]);
      list.append(div);
    });
  }

  // --- rows <-> JSON --------------------------------------------------------------------

  function rowsValue(editor) {
    if (editor.dataset.editor === "command") {
      return liveRows(editor)
        .map(function (row) { return row.querySelector(".sw-arg").value; })
        .filter(function (arg) { return arg.trim() !== ""; });
    }
    const out = [];
    liveRows(editor).forEach(function (row) {
      const cells = {};
      TEXT_COLUMNS.forEach(function (c) { cells[c] = field(row, c).value.trim(); });
      if (!(cells.name || cells.default || cells.choices || cells.help)) return;
      const item = {
        name: cells.name,
        type: field(row, "type").value,
        help: cells.help,
        required: field(row, "required").value === "required",
      };
      if (cells.default) item.default = cells.default;
      if (cells.choices) {
        item.choices = cells.choices.split(",").map(function (c) { return c.trim(); })
          .filter(Boolean);
      }
      out.push(item);
    });
    return out;
  }

  function fillRows(editor, value) {
    // False when the JSON cannot be shown as rows (the advanced box then stays in use).
    if (!Array.isArray(value)) return false;
    const command = editor.dataset.editor === "command";
    const ok = value.every(function (item) {
      return command ? typeof item === "string" : item && typeof item === "object";
    });
    if (!ok) return false;
    liveRows(editor).forEach(function (row) { row.remove(); });
    value.forEach(function (item) {
      const row = newRow(editor);
      if (command) {
        row.querySelector(".sw-arg").value = item;
        return;
      }
      field(row, "name").value = item.name || "";
      field(row, "type").value = item.type || "string";
      const d = item.default;
      field(row, "default").value = d === undefined || d === null ? "" :
        (d === true ? "yes" : d === false ? "no" : String(d));
      field(row, "choices").value = Array.isArray(item.choices) ? item.choices.join(", ") : "";
      field(row, "help").value = item.help || "";
      field(row, "required").value = item.required === true ? "required" : "";
    });
    newRow(editor);
    renumber(editor);
    return true;
  }

  function toggleJson(box) {
    const editor = box.closest("[data-editor]");
    const text = editor.querySelector("[data-json]");
    const rows = editor.querySelector("[data-rows]");
    if (box.checked) {
      text.value = JSON.stringify(rowsValue(editor), null, 2);
      rows.classList.add("sw-disabled");
      return;
    }
    let value;
    try {
      value = JSON.parse(text.value || "[]");
    } catch (err) {
      box.checked = true;
      window.alert("The JSON is not valid, so it cannot become rows: " + err.message);
      return;
    }
    if (!fillRows(editor, value)) {
      box.checked = true;
      window.alert("This JSON cannot be shown as rows; keep editing it as JSON.");
      return;
    }
    rows.classList.remove("sw-disabled");
    refreshVariables(editor);
  }

  // --- events ---------------------------------------------------------------------------

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-row-add], [data-row-up], [data-row-down], [data-row-remove]");
    if (!button) return;
    const editor = button.closest("[data-editor]");
    if (!editor) return;
    event.preventDefault();
    const row = button.closest("[data-row]");
    if (button.hasAttribute("data-row-add")) {
      const rows = liveRows(editor);
      const last = rows[rows.length - 1];
      const added = last && isBlank(last) ? last : newRow(editor);  // fill a blank row first
      const first = added.querySelector("input");
      if (first) first.focus();
    } else if (button.hasAttribute("data-row-remove")) {
      row.remove();
    } else if (button.hasAttribute("data-row-up")) {
      const before = row.previousElementSibling;
      if (before) row.parentNode.insertBefore(row, before);
    } else {
      const after = row.nextElementSibling;
      if (after && !after.hasAttribute("data-prototype")) row.parentNode.insertBefore(after, row);
    }
    renumber(editor);
    refreshVariables(editor);
  });

  document.addEventListener("input", function (event) {
    if (event.target.matches("[data-param-name], [data-param-help]")) refreshVariables(event.target);
  });

  document.addEventListener("change", function (event) {
    if (event.target.matches("[data-use-json]")) toggleJson(event.target);
  });

  function isBlank(row) {
    return Array.from(row.querySelectorAll("input[type=text]")).every(function (input) {
      return input.value.trim() === "";
    });
  }

  function enhance(root) {
    root.querySelectorAll("[data-editor] [data-js-only]").forEach(function (el) {
      if (!el.closest("[data-prototype]")) el.hidden = false;
    });
    // The spare blank rows are for pages without JavaScript; here "Add" makes rows, so new
    // ones come right after the last filled one.
    root.querySelectorAll("[data-editor]").forEach(function (editor) {
      const rows = liveRows(editor);
      for (let i = rows.length - 1; i >= 0 && isBlank(rows[i]); i--) rows[i].remove();
      if (editor.dataset.editor === "command" && !liveRows(editor).length) newRow(editor);
      renumber(editor);
    });
    root.querySelectorAll("[data-use-json]:checked").forEach(function (box) {
      box.closest("[data-editor]").querySelector("[data-rows]").classList.add("sw-disabled");
    });
  }

  document.addEventListener("DOMContentLoaded", function () { enhance(document); });
  // The admin's "Add another Software" inline.
  document.addEventListener("formset:added", function (event) { enhance(event.target); });
})();
