// Drag-and-drop upload: one request per file, each with its own progress bar and its own
// answer (a result card that htmx then keeps up to date, or an error that says what to do).
// No inline scripts: the page's CSP allows only our own files.
(function () {
  "use strict";

  var PARALLEL = 3;
  var MESSAGES = {
    0: "The upload did not reach the server. Check the network connection and try again.",
    413: "This file is too large. Export a smaller image (JPEG or PNG) and try again.",
    429: "Too many uploads at once. Wait a few seconds, then drop the file again.",
    502: "The service is restarting. Wait a minute, then try again.",
    503: "The analysis service is busy or unavailable. Wait a minute, then try again.",
    504: "The service took too long to answer. Try again in a minute."
  };

  function ready(fn) {
    if (document.readyState !== "loading") { fn(); } else { document.addEventListener("DOMContentLoaded", fn); }
  }

  ready(function () {
    var form = document.getElementById("upload-form");
    if (!form) { return; }
    var input = document.getElementById("file-input");
    var zone = document.getElementById("dropzone");
    var results = document.getElementById("results");
    var maxBytes = Number(form.dataset.maxBytes);
    var extensions = form.dataset.extensions.split(",");
    var csrf = form.querySelector("input[name=csrf_token]").value;
    var queue = [];
    var active = 0;
    form.classList.add("js");

    input.addEventListener("change", function () { add(input.files); input.value = ""; });
    form.addEventListener("submit", function (e) { e.preventDefault(); add(input.files); });
    ["dragenter", "dragover"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("dragging"); });
    });
    ["dragleave", "dragend", "drop"].forEach(function (name) {
      zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (e) { add(e.dataTransfer.files); });
    // A file dropped next to the zone must not make the browser navigate away to it.
    window.addEventListener("dragover", function (e) { e.preventDefault(); });
    window.addEventListener("drop", function (e) { e.preventDefault(); });

    function add(files) {
      Array.prototype.forEach.call(files || [], function (file) {
        var shell = makeShell(file);
        results.insertBefore(shell.card, results.firstChild);
        var problem = precheck(file);
        if (problem) { fail(shell, problem); return; }
        queue.push({ file: file, shell: shell });
      });
      pump();
    }

    function precheck(file) {
      var name = file.name.toLowerCase();
      var ok = extensions.some(function (ext) { return name.endsWith(ext); });
      if (!ok) { return "“" + file.name + "” is not a PNG, JPEG or DICOM file. Export the X-ray in one of these formats and try again."; }
      if (file.size === 0) { return "This file is empty. Export the image again and retry."; }
      if (file.size > maxBytes) {
        return "This file is " + (file.size / 1048576).toFixed(1) + " MB; the limit is " +
          Math.round(maxBytes / 1048576) + " MB. Export a smaller image (JPEG or PNG) and try again.";
      }
      return null;
    }

    function makeShell(file) {
      var card = document.createElement("article");
      card.className = "card card-pending";
      card.setAttribute("data-status", "uploading");
      var body = el("div", "card-body");
      var head = el("header", "card-head");
      var title = el("h3", "card-title", file.name);
      var badge = el("span", "status status-uploading", "Uploading");
      head.appendChild(title);
      head.appendChild(badge);
      var bar = document.createElement("progress");
      bar.max = 100;
      bar.value = 0;
      bar.setAttribute("aria-label", "Upload of " + file.name);
      var note = el("p", "waiting", "Waiting to upload…");
      body.appendChild(head);
      body.appendChild(bar);
      body.appendChild(note);
      card.appendChild(body);
      return { card: card, bar: bar, note: note, badge: badge, name: file.name };
    }

    function el(tag, cls, text) {
      var node = document.createElement(tag);
      node.className = cls;
      if (text) { node.textContent = text; }
      return node;
    }

    function pump() {
      while (active < PARALLEL && queue.length) {
        var job = queue.shift();
        active += 1;
        send(job.file, job.shell);
      }
    }

    function send(file, shell) {
      var data = new FormData();
      data.append("csrf_token", csrf);
      data.append("file", file, file.name);
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.action);
      xhr.setRequestHeader("HX-Request", "true");
      xhr.setRequestHeader("X-CSRFToken", csrf);
      // One key per file, kept across retries of this send: the API answers a retry of an
      // upload it already stored with the first job instead of queueing a second one.
      shell.key = shell.key || newKey();
      xhr.setRequestHeader("Idempotency-Key", shell.key);
      xhr.upload.addEventListener("progress", function (e) {
        if (!e.lengthComputable) { return; }
        var pct = Math.round((e.loaded / e.total) * 100);
        shell.bar.value = pct;
        shell.note.textContent = "Uploading… " + pct + " %";
      });
      xhr.upload.addEventListener("load", function () {
        shell.bar.value = 100;
        shell.note.textContent = "Uploaded, handing over to the analyser…";
      });
      xhr.addEventListener("load", function () { done(); answer(xhr, shell); });
      xhr.addEventListener("error", function () { done(); fail(shell, MESSAGES[0]); });
      xhr.addEventListener("abort", function () { done(); fail(shell, MESSAGES[0]); });
      shell.note.textContent = "Uploading…";
      xhr.send(data);
    }

    function done() { active -= 1; pump(); }

    function newKey() {
      if (window.crypto && window.crypto.randomUUID) { return window.crypto.randomUUID(); }
      var bytes = new Uint8Array(16);
      window.crypto.getRandomValues(bytes);
      return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
    }

    function answer(xhr, shell) {
      var redirect = xhr.getResponseHeader("HX-Redirect");
      if (redirect) { window.location.assign(redirect); return; }
      var type = xhr.getResponseHeader("Content-Type") || "";
      if (type.indexOf("text/html") === 0 && xhr.responseText.indexOf("data-card") !== -1) {
        replace(shell, xhr.responseText);
        return;
      }
      fail(shell, MESSAGES[xhr.status] || "The upload failed (error " + xhr.status + "). Try again.");
    }

    function replace(shell, html) {
      var tpl = document.createElement("template");
      tpl.innerHTML = html.trim();
      var nodes = Array.prototype.slice.call(tpl.content.children);
      nodes.forEach(function (node) {
        var title = node.querySelector(".card-title");
        if (title && !title.textContent.trim()) { title.textContent = shell.name; }
      });
      shell.card.replaceWith.apply(shell.card, nodes);
      if (window.htmx) { nodes.forEach(function (node) { window.htmx.process(node); }); }
    }

    function fail(shell, message) {
      shell.card.className = "card card-error";
      shell.card.setAttribute("role", "alert");
      shell.card.setAttribute("data-status", "rejected");
      shell.badge.className = "status status-failed";
      shell.badge.textContent = "Not uploaded";
      shell.bar.remove();
      shell.note.className = "error-message";
      shell.note.textContent = message;
    }
  });
})();
