// mailroom dashboard: small progressive enhancements. Every page works
// without this file; with it, copy buttons copy, the import shows its
// progress, the segment builder shows a live count, and a sending campaign
// updates its counts without a reload. Requests go to mailroom only.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var csrf = document.body ? document.body.getAttribute("data-csrf") : "";
  // Where a request has no form fields of its own, the token travels in this header.
  var csrfHeader = "X-CSRF-Token";
  function csrfHeaders() { var h = {}; h[csrfHeader] = csrf; return h; }

  // Times: written by the server in UTC (<time datetime>, the exact UTC time
  // in its title); shown here in the viewer's time zone, relative when recent.
  var absolute = window.Intl ? new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" }) : null;
  var relative = window.Intl && Intl.RelativeTimeFormat ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" }) : null;
  function localTime(el) {
    var t = Date.parse(el.getAttribute("datetime"));
    if (isNaN(t) || !absolute) return;
    var secs = Math.round((t - Date.now()) / 1000);
    var away = Math.abs(secs);
    var text;
    if (relative && away < 45) text = secs <= 0 ? "just now" : "in a moment";
    else if (relative && away < 3600) text = relative.format(Math.round(secs / 60), "minute");
    else if (relative && away < 12 * 3600) text = relative.format(Math.round(secs / 3600), "hour");
    else text = absolute.format(new Date(t));
    el.textContent = text;
  }
  function localTimes(root) { Array.prototype.forEach.call(root.querySelectorAll("time[datetime]"), localTime); }
  localTimes(document);
  setInterval(function () { localTimes(document); }, 30000);

  // A table wider than its box scrolls sideways; a keyboard can scroll it only
  // if it can be focused (WCAG 2.1.1), so such a box joins the tab order.
  function scrollables() {
    Array.prototype.forEach.call(document.querySelectorAll(".table-wrap"), function (el) {
      if (el.scrollWidth > el.clientWidth + 1) el.setAttribute("tabindex", "0");
      else el.removeAttribute("tabindex");
    });
  }
  scrollables();
  window.addEventListener("resize", scrollables);

  // Copy buttons: data-copy="#id" copies that element's text.
  document.addEventListener("click", function (ev) {
    var btn = ev.target.closest ? ev.target.closest("[data-copy]") : null;
    if (!btn) return;
    var el = document.querySelector(btn.getAttribute("data-copy"));
    if (!el) return;
    var text = el.textContent.trim();
    var done = function () {
      var label = btn.firstChild;
      var before = label.nodeValue;
      label.nodeValue = "Copied";
      setTimeout(function () { label.nodeValue = before; }, 1500);
    };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {});
    } else {
      var range = document.createRange();
      range.selectNodeContents(el);
      var sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      try { document.execCommand("copy"); done(); } catch (e) { /* selected: the user can copy */ }
    }
  });

  // CSV import: the chosen file is sent as the request body, with a progress bar.
  var form = document.querySelector("form[data-import]");
  if (form) {
    form.addEventListener("submit", function (ev) {
      var file = document.getElementById("csv-file").files[0];
      if (!file) return; // pasted CSV: the plain form post
      ev.preventDefault();
      var box = document.getElementById("import-progress");
      var bar = document.getElementById("import-bar");
      var status = document.getElementById("import-status");
      box.hidden = false;
      var xhr = new XMLHttpRequest();
      xhr.open("POST", form.getAttribute("action"));
      xhr.setRequestHeader("Content-Type", "text/csv");
      xhr.setRequestHeader(csrfHeader, csrf);
      xhr.upload.onprogress = function (e) {
        if (e.lengthComputable) {
          var pct = Math.round((e.loaded / e.total) * 100);
          bar.value = pct;
          bar.textContent = pct + "%";
          status.textContent = "Uploaded " + pct + "%";
        }
      };
      xhr.upload.onload = function () { status.textContent = "Uploaded; writing contacts…"; };
      // The answer is one JSON line per committed chunk of rows, then the report.
      var seen = 0;
      var finished = false;
      var show = function (report) {
        bar.value = 100;
        status.textContent = "Done: " + report.created + " created, " + report.skipped + " skipped, " + report.rejected + " rejected.";
        var out = document.getElementById("import-report");
        ["id", "created", "updated", "skipped", "rejected"].forEach(function (k) {
          out.querySelector('[data-report="' + k + '"]').textContent = report[k];
        });
        var list = out.querySelector('[data-report="errors"]');
        list.textContent = "";
        (report.errors || []).forEach(function (e) {
          var li = document.createElement("li");
          li.textContent = "Line " + e.line + ": " + e.reason;
          list.appendChild(li);
        });
        out.hidden = false;
      };
      var lines = function () {
        var text = xhr.responseText;
        var end = text.lastIndexOf("\n");
        if (end < seen) return;
        text.slice(seen, end).split("\n").forEach(function (l) {
          if (!l) return;
          var m;
          try { m = JSON.parse(l); } catch (e) { return; }
          if (m.progress) {
            var p = m.progress;
            status.textContent = (p.created + p.updated + p.skipped + p.rejected) + " rows written (" +
              p.created + " created, " + p.skipped + " skipped)…";
          } else if (m.report) {
            finished = true;
            show(m.report);
          } else if (m.error) {
            finished = true;
            status.textContent = "The import failed: " + m.error;
          }
        });
        seen = end + 1;
      };
      xhr.onprogress = lines;
      xhr.onload = function () {
        if (xhr.status !== 200) {
          var msg = xhr.status === 403 ? "the form expired: reload the page" : "status " + xhr.status;
          status.textContent = "The import failed (" + msg + ").";
          return;
        }
        lines();
        if (!finished) status.textContent = "The import stopped before it finished; the rows written so far are kept.";
      };
      xhr.onerror = function () { status.textContent = "The upload failed."; };
      xhr.send(file);
    });
  }

  // Segment builder: the audience count of the filter as it is typed.
  var builder = document.querySelector("form[data-live-count]");
  if (builder) {
    var out = builder.querySelector("[data-count]");
    var timer = null;
    var update = function () {
      var body = new URLSearchParams(new FormData(builder));
      fetch(builder.getAttribute("data-live-count"), {
        method: "POST", body: body, credentials: "same-origin", headers: csrfHeaders()
      }).then(function (r) { return r.json(); }).then(function (j) {
        out.textContent = j.count !== undefined ? j.count : "–";
        // A condition the server cannot use: say why beside the count.
        var why = builder.querySelector("#count-error");
        if (why) { why.textContent = j.error || ""; why.hidden = !j.error; }
      }).catch(function () { out.textContent = "–"; });
    };
    builder.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 250); });
    builder.addEventListener("change", update);
    update();
  }

  // Template editor: the preview follows the fields as they are typed.
  var editor = document.querySelector("form[data-preview]");
  if (editor) {
    var perr = document.getElementById("preview-error");
    var pbody = document.getElementById("preview-body");
    var ptimer = null;
    var asked = 0;
    var render = function () {
      var mine = ++asked;
      var body = new URLSearchParams(new FormData(editor));
      body.delete("action");
      fetch(editor.getAttribute("data-preview"), {
        method: "POST", body: body, credentials: "same-origin", headers: csrfHeaders()
      }).then(function (r) { return r.json(); }).then(function (j) {
        if (mine !== asked) return; // a later keystroke has asked again
        if (j.error !== undefined) {
          perr.textContent = j.error.message;
          perr.hidden = false;
          return;
        }
        perr.hidden = true;
        pbody.hidden = false;
        document.getElementById("preview-subject").textContent = j.subject;
        document.getElementById("preview-html").srcdoc = j.html;
        document.getElementById("preview-text").textContent = j.text || "";
      }).catch(function () {
        if (mine !== asked) return;
        perr.textContent = "The preview could not be fetched.";
        perr.hidden = false;
      });
    };
    editor.addEventListener("input", function () { clearTimeout(ptimer); ptimer = setTimeout(render, 300); });
  }

  // Compose: show the fields of the chosen kind of content only.
  var choice = document.querySelector("[data-content-choice]");
  if (choice) {
    var sync = function () {
      var picked = choice.querySelector("input[name=content]:checked");
      var kind = picked ? picked.value : "inline";
      choice.querySelectorAll("[data-content]").forEach(function (g) {
        g.hidden = g.getAttribute("data-content") !== kind;
      });
    };
    choice.addEventListener("change", sync);
    sync();
  }

  // A campaign's detail page: poll its figures, every second while it sends,
  // then every ten while the page is in view (delivery events, opens and
  // clicks keep coming after the last email went out), for up to an hour.
  // The funnel and the figures are set from the one answer's `figures.shown`,
  // formatted by the server as the page was drawn.
  var live = document.querySelector("[data-poll]");
  if (live) {
    var set = function (key, value) {
      var el = document.querySelector('[data-live="' + key + '"]');
      if (el) el.textContent = typeof value === "number" ? value.toLocaleString("en-US") : value;
    };
    var bar = function (key, value) {
      var el = document.querySelector('[data-live="' + key + '-bar"]');
      if (el) el.value = value;
    };
    var kinds = { sent: "ok", queued: "info", sending: "info", scheduled: "info", paused: "warn",
      partially_failed: "warn", failed: "bad", cancelled: "muted" };
    var until = Date.now() + 3600 * 1000;
    var wasSettled = live.hasAttribute("data-settled");
    var later = function (ms) { if (Date.now() < until) setTimeout(poll, ms); };
    var settle = function () {
      live.setAttribute("data-settled", "");
      // Nothing is left to pause or cancel.
      var controls = document.querySelector('[data-live="controls"]');
      if (controls) controls.hidden = true;
      // And the recipients' statuses, fetched as the page and swapped in.
      fetch(location.pathname, { credentials: "same-origin" })
        .then(function (r) { return r.text(); })
        .then(function (html) {
          var fresh = new DOMParser().parseFromString(html, "text/html").querySelector('[data-live="recipients"]');
          var old = document.querySelector('[data-live="recipients"]');
          if (fresh && old) { localTimes(fresh); old.replaceWith(fresh); }
        })
        .catch(function () {});
    };
    var poll = function () {
      if (document.hidden) { later(10000); return; }
      fetch(live.getAttribute("data-poll"), { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (c) {
          var n = c.counts || {};
          Object.keys(n).forEach(function (k) { set("count-" + k, n[k]); });
          var f = c.figures || { shown: {}, funnel: [] };
          Object.keys(f.shown).forEach(function (k) { set(k, f.shown[k]); });
          f.funnel.forEach(function (s) { bar(s.key, s.value); });
          var badge = document.querySelector('[data-live="status"] .badge');
          if (badge) {
            badge.textContent = String(c.status).replace(/_/g, " ");
            badge.className = "badge " + (kinds[c.status] || "muted");
          }
          if (c.settled && !wasSettled) { wasSettled = true; settle(); }
          later(c.settled ? 10000 : 1000);
        })
        .catch(function () { later(3000); });
    };
    later(wasSettled ? 10000 : 1000);
  }
})();
