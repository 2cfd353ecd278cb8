// Small progressive enhancements for the console. Every page works without this file: the meeting
// page then simply does not refresh itself, and offers a reload link instead.
(function () {
  "use strict";

  // Show times in the agent's own timezone: the server reads this cookie.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone) {
      document.cookie = "console_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* an old browser: the server's timezone is used */ }

  function setUpCopyButtons(root) {
    root.querySelectorAll(".js-copy[data-copy-target]").forEach(function (button) {
      if (!navigator.clipboard || button.dataset.ready) { return; }
      button.hidden = false;
      button.dataset.ready = "1";
      // Only the words change, so a key hint beside them (<kbd>c</kbd>) stays.
      var label = button.querySelector(".js-copy-label") || button;
      button.dataset.label = label.textContent;
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copyTarget);
        var status = button.parentElement.querySelector(".copy-status");
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          label.textContent = "Copied";
          if (status) { status.textContent = "Copied to the clipboard"; }
          setTimeout(function () { label.textContent = button.dataset.label; }, 1500);
        });
      });
    });
  }

  // "/" jumps to the lookup box; on a triage table j/k move through the rows (Enter then opens
  // the focused meeting, as any link does) - unless the agent is typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) { return; }
    if (event.key === "/") {
      var box = document.getElementById("id_q");
      if (box) {
        event.preventDefault();
        // On a narrow window the meeting page folds the box behind "Look up another meeting".
        var folded = box.closest("details");
        if (folded) { folded.open = true; }
        box.focus();
        box.select();
      }
      return;
    }
    if (event.key !== "j" && event.key !== "k") { return; }
    // The rows a table's filter hides (hidden until a refresh brings them into it) are skipped.
    var links = Array.prototype.slice.call(document.querySelectorAll("tr:not([hidden]) .js-row-link"));
    if (!links.length) { return; }
    event.preventDefault();
    var at = links.indexOf(active);
    var next = at === -1 ? 0 : at + (event.key === "j" ? 1 : -1);
    links[Math.max(0, Math.min(links.length - 1, next))].focus();
  });

  // --- Key hints only where there is a keyboard ------------------------------------------------
  // A touch-only screen hides the <kbd> hints (console.css). A key pressed outside a text field
  // means a keyboard is attached after all (a tablet's): show them from then on. The shortcuts
  // themselves work everywhere. Captured, so it sees the key before a shortcut moves the focus.
  document.addEventListener("keydown", function (event) {
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) { return; }
    if (event.key && event.key !== "Unidentified") { document.documentElement.classList.add("has-keyboard"); }
  }, true);

  // A paste the console would not read (meetings/forms.py MAX_PASTE, the server's own check and
  // words), or one too large to send at all (MAX_PASTE_BYTES: a proxy would answer with a bare
  // error page), is said here and not sent: the box keeps it as it is.
  function tooMuchToSend(box) {
    var most = Number(box.dataset.maxPaste), bytes = Number(box.dataset.maxBytes);
    var length = box.value.length;
    if (most && length > most) {
      return box.dataset.tooLong.replace("{length}", length.toLocaleString("en-US"));
    }
    // The paste in the form's body, as the browser encodes it: each byte outside ASCII letters
    // and digits as %XX.
    var encoded = bytes ? encodeURIComponent(box.value).length : 0;
    if (bytes && encoded > bytes) {
      var kb = function (n) { return Math.ceil(n / 1024).toLocaleString("en-US") + " KB"; };
      return "That paste is too large to send: " + kb(encoded) + " once encoded (characters outside " +
        "ASCII take up to nine bytes each), over the " + kb(bytes) + " a lookup can send. Keep the " +
        "part with the meeting IDs, or look the rest up in a second paste.";
    }
    return "";
  }
  document.addEventListener("submit", function (event) {
    var box = event.target.querySelector && event.target.querySelector("#id_q[data-max-paste]");
    if (!box) { return; }
    var why = tooMuchToSend(box);
    if (!why) { return; }
    event.preventDefault();
    var shown = event.target.querySelector("#q-error");
    if (!shown) {
      shown = document.createElement("div");
      shown.className = "field-error";
      shown.id = "q-error";
      shown.setAttribute("role", "alert");
      event.target.appendChild(shown);
    }
    shown.textContent = "";
    var line = document.createElement("p");
    line.textContent = why;
    shown.appendChild(line);
    box.setAttribute("aria-describedby", "q-error");
    box.focus();
  });

  // The lookup box takes a pasted list on several lines, but Enter still looks up (Shift+Enter
  // starts a new line), as it did when the box was a single line.
  document.addEventListener("keydown", function (event) {
    var box = event.target;
    if (event.key !== "Enter" || event.shiftKey || box.id !== "id_q" || !box.form) { return; }
    event.preventDefault();
    if (box.form.requestSubmit) { box.form.requestSubmit(); } else { box.form.submit(); }
  });

  // --- Relative times ("5 min ago") stay true while a page is open ----------------------------
  // In the server's words (meetings/templatetags/meeting_format.py `relative`, and `overrun` for
  // duration() below), rounded alike; tests/browser/test_time_words.py holds them to each other.
  function relative(date) {
    var seconds = (date.getTime() - Date.now()) / 1000;
    var amount = Math.abs(seconds);
    if (amount < 60) { return "just now"; }
    var count, unit;
    if (Math.round(amount / 60) < 60) { count = Math.round(amount / 60); unit = "min"; }
    else if (Math.round(amount / 3600) < 24) { count = Math.round(amount / 3600); unit = "h"; }
    else { count = Math.round(amount / 86400); unit = "d"; }
    return seconds > 0 ? "in " + count + " " + unit : count + " " + unit + " ago";
  }
  function tickRelativeTimes() {
    document.querySelectorAll("time[data-relative][datetime]").forEach(function (el) {
      var text = relative(new Date(el.getAttribute("datetime")));
      if (el.textContent !== text) { el.textContent = text; }
    });
  }
  setInterval(tickRelativeTimes, 15000);

  // "updated 12 s ago" on the live line, and "overrunning by 7 min": these tick every second.
  function ago(date) {
    var seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    if (seconds < 5) { return "just now"; }
    if (seconds < 60) { return seconds + " s ago"; }
    var minutes = Math.floor(seconds / 60);
    return minutes < 60 ? minutes + " min ago" : Math.floor(minutes / 60) + " h " + (minutes % 60) + " min ago";
  }
  function duration(ms) {
    var minutes = Math.max(1, Math.round(ms / 60000));
    return minutes < 60 ? minutes + " min" : Math.floor(minutes / 60) + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : "");
  }
  // "trying again in 20 s" on a failing live line counts down from when it arrived (the poller's
  // timer starts then too); paused, nothing is tried until the agent resumes.
  function retryIn(el) {
    if (!el.dataset.until) { el.dataset.until = Date.now() + parseInt(el.dataset.retryIn, 10) * 1000; }
    if (paused) { return "once you resume live updates"; }
    var left = Math.ceil((el.dataset.until - Date.now()) / 1000);
    return left > 0 ? "in " + left + " s" : "now";
  }
  function tickClocks() {
    document.querySelectorAll("[data-retry-in]").forEach(function (el) {
      var text = retryIn(el);
      if (el.textContent !== text) { el.textContent = text; }
    });
    document.querySelectorAll("time[data-ago][datetime]").forEach(function (el) {
      var text = ago(new Date(el.getAttribute("datetime")));
      if (el.textContent !== text) { el.textContent = text; }
    });
    document.querySelectorAll("time[data-overrun][datetime]").forEach(function (el) {
      var text = duration(Date.now() - new Date(el.getAttribute("datetime")).getTime());
      if (el.textContent !== text) { el.textContent = text; }
    });
  }
  setInterval(tickClocks, 1000);

  // --- Live meeting page ----------------------------------------------------------------------
  // The server renders #live-poller with its own hx-trigger, so it decides how often to poll and
  // when to stop. Here we only hold requests back while the agent paused or the tab is hidden.
  var paused = false;
  // When the console is too busy it answers a refresh with 503 and Retry-After: no refresh is
  // sent before then, whatever the poll timer says.
  var holdUntil = 0;

  function poller() { return document.getElementById("live-poller"); }

  function showPauseState() {
    var el = poller();
    if (!el) { return; }
    var button = el.querySelector(".js-live-toggle");
    if (button) {
      button.hidden = false;
      button.textContent = paused ? "Resume live updates" : "Pause live updates";
      button.setAttribute("aria-pressed", paused ? "true" : "false");
    }
    el.classList.toggle("live--paused", paused);
    var text = el.querySelector(".js-live-text");
    if (text) {
      if (paused) {
        if (!text.dataset.liveText) { text.dataset.liveText = text.innerHTML; }
        text.textContent = "Paused: figures are not being refreshed.";
      } else if (text.dataset.liveText) {
        text.innerHTML = text.dataset.liveText;
        delete text.dataset.liveText;
      }
    }
  }

  // An explicit "Refresh now" goes through even while paused; the timer's refreshes do not.
  var forced = false;
  function refreshNow(force) {
    var el = poller();
    if (el && el.hasAttribute("hx-get") && window.htmx) {
      forced = !!force;
      window.htmx.trigger(el, "refresh-now");
    }
  }

  // When the values on the page were last confirmed by Connvo: the page's own render, then each
  // refresh that answered (changed or not). A failed or stopped refresh says "as of" this time.
  var valuesAt = null;
  function noteValuesConfirmed(date) { valuesAt = date || new Date(); }
  function markStale() {
    var el = poller();
    if (!el || !valuesAt) { return; }
    el.querySelectorAll(".js-as-of").forEach(function (span) {
      span.textContent = "as of " + valuesAt.toTimeString().slice(0, 8);
    });
  }

  function togglePause() {
    paused = !paused;
    showPauseState();
    if (!paused) { refreshNow(); }
  }

  document.addEventListener("click", function (event) {
    if (event.target.closest(".js-live-toggle")) { togglePause(); }
    else if (event.target.closest(".js-refresh-now")) { refreshNow(true); }
  });

  // --- Live by push, polling as the fallback -----------------------------------------------------
  // With push on, #metrics holds a Server-Sent Events stream (htmx's SSE extension): each change
  // comes as a fragment whose poller does not poll, taken by #live-stream (never replaced, so no
  // event is lost while a swap settles) and swapped out of band. When the stream fails (the
  // server says "fallback", or the connection drops) the page asks for the polling fragment at
  // once, and polls; the extension (or the browser) reconnects, and the stream's next fragment
  // puts the page back on push. While the stream delivers, the poller does not poll: the stream
  // brings each change. The same for a meeting page, a triage table and the watch list: a
  // table's poller adds what its rows show (data-refresh-vals).
  var pushOpen = false;
  // Why the page polls instead of being pushed: the "fallback" event's data, the server's words
  // (meetings/views/push.py `why_polling`), said on the live line until a pushed answer comes.
  var pushNote = "";
  function showPushNote() {
    var el = poller();
    var text = el && el.querySelector(".js-live-text");
    if (!text || !pushNote || el.dataset.mode !== "poll" || text.querySelector(".js-push-note")) { return; }
    var note = document.createElement("span");
    note.className = "live__note js-push-note";
    note.textContent = " " + pushNote;
    text.appendChild(note);
  }
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.elt && event.detail.elt.id === "live-poller") { showPushNote(); }
  });
  function fallBackToPolling(event) {
    if (event && event.type === "fallback") { pushNote = event.data || ""; }
    pushOpen = false;
    var el = poller();
    if (!el || el.dataset.mode !== "push" || el.dataset.status === "ended" || !window.htmx) { return; }
    el.dataset.mode = "falling-back";  // one request, however many errors the stream reports
    forced = true;
    // No "seen": the answer is a whole fragment, with its poll timer. No span either: the
    // stream's spans are sealed as it ends, and the polling opens the page's next ones.
    var values = { failures: 0, interval: el.dataset.interval, span: "" };
    var extra = {};
    try { extra = JSON.parse(el.dataset.refreshVals || "{}"); } catch (e) { extra = {}; }
    Object.keys(extra).forEach(function (name) { values[name] = extra[name]; });
    window.htmx.ajax("GET", el.dataset.refreshUrl, {
      source: el, target: el, swap: "outerHTML", values: values
    });
  }
  document.addEventListener("htmx:sseOpen", function (event) {
    var source = event.detail.source;
    if (source && !source.consoleFallback) {
      source.consoleFallback = true;
      source.addEventListener("fallback", fallBackToPolling);
    }
  });
  // Pushed, once the stream brings a fragment (not merely when it opens: a stream that cannot
  // subscribe opens, says "fallback" and ends).
  document.addEventListener("htmx:sseBeforeMessage", function () { pushOpen = true; pushNote = ""; });
  document.addEventListener("htmx:sseError", fallBackToPolling);
  document.addEventListener("htmx:sseClose", function () { pushOpen = false; });

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.elt.id !== "live-poller") { return; }
    // A person's own "Refresh now" goes through; the poll timer waits out a busy console's
    // Retry-After as well as a pause or a hidden tab, and does not run while the page is pushed.
    if (!forced && (pushOpen || paused || document.hidden || Date.now() < holdUntil)) { event.preventDefault(); }
    forced = false;
  });

  // --- Keyboard shortcuts: r refresh now, p pause, c copy the meeting ID, ? lists them ---------
  // The list shows what works on this page: j/k on a triage table, c where there is an ID to copy.
  function always() { return true; }
  function tableRows() { return document.querySelector("tr:not([hidden]) .js-row-link"); }
  var SHORTCUTS = [
    ["/", "Jump to the lookup box", function () { return document.getElementById("id_q"); }],
    ["j", "Next meeting in the table", tableRows],
    ["k", "Previous meeting in the table", tableRows],
    ["Enter", "Open the meeting in focus", tableRows],
    ["r", "Refresh now", function () { return poller() && poller().hasAttribute("hx-get"); }],
    ["p", "Pause or resume live updates", function () { return document.querySelector(".js-live-toggle"); }],
    ["c", "Copy the meeting ID", function () { return document.querySelector(".js-copy[data-shortcut='c']:not([hidden])"); }],
    ["?", "Show or hide this list", always],
    ["Esc", "Hide this list", always]];
  function toggleShortcuts(show) {
    var box = document.getElementById("shortcuts");
    if (box && (show === true || (show === undefined && box.hidden))) {
      // Opened again: the page may have changed since (a refresh stopped, a table filled).
      box.remove();
      box = null;
    }
    if (!box && show !== false) {
      box = document.createElement("aside");
      box.id = "shortcuts";
      box.className = "shortcuts";
      box.setAttribute("aria-label", "Keyboard shortcuts");
      var heading = document.createElement("h2");
      heading.textContent = "Keyboard shortcuts";
      var list = document.createElement("dl");
      SHORTCUTS.forEach(function (pair) {
        if (!pair[2]()) { return; }
        var dt = document.createElement("dt");
        var key = document.createElement("kbd");
        key.textContent = pair[0];
        dt.appendChild(key);
        var dd = document.createElement("dd");
        dd.textContent = pair[1];
        list.appendChild(dt);
        list.appendChild(dd);
      });
      box.appendChild(heading);
      box.appendChild(list);
      document.body.appendChild(box);
      return;
    }
    if (box) { box.hidden = show === undefined ? !box.hidden : !show; }
  }
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) { return; }
    var key = event.key;
    if (key === "Escape") { toggleShortcuts(false); return; }
    if (key === "?") { toggleShortcuts(); event.preventDefault(); return; }
    if (key === "r" && poller() && poller().hasAttribute("hx-get")) { refreshNow(true); event.preventDefault(); }
    else if (key === "p" && document.querySelector(".js-live-toggle")) { togglePause(); event.preventDefault(); }
    else if (key === "c") {
      var copy = document.querySelector(".js-copy[data-shortcut='c']:not([hidden])");
      if (copy) { copy.click(); event.preventDefault(); }
    }
  });

  document.addEventListener("visibilitychange", function () {
    if (!document.hidden && !paused) { refreshNow(); }
  });

  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.id !== "live-poller") { return; }
    var text = event.detail.elt.querySelector(".js-live-text");
    event.detail.elt.classList.toggle("live--held", event.detail.xhr.status === 503);
    if (event.detail.xhr.status !== 503) {
      // Served again: put back what the page said before the console was busy.
      if (text && text.dataset.busyText) {
        text.innerHTML = text.dataset.busyText;
        delete text.dataset.busyText;
      }
      return;
    }
    var wait = parseInt(event.detail.xhr.getResponseHeader("Retry-After"), 10);
    if (!(wait > 0)) { return; }
    holdUntil = Date.now() + wait * 1000;
    if (text && !paused) {
      if (!text.dataset.busyText) { text.dataset.busyText = text.innerHTML; }
      text.textContent = whyRetryLater(event.detail.xhr) + " The next check is in " + wait + " s.";
    }
  });
  // The console says why in one plain line (connvo_admin/unavailable.py `retry_later`: busy, or
  // its database unavailable); a 503 from something in front of it (a proxy's page) does not.
  function whyRetryLater(xhr) {
    var type = xhr.getResponseHeader("Content-Type") || "";
    var words = (xhr.responseText || "").trim();
    if (type.indexOf("text/plain") === 0 && words && words.length <= 200 && words.indexOf("\n") < 0) {
      return words;
    }
    return "The console did not answer.";
  }

  // A 204 means "nothing changed": the values are confirmed as of now. The live line's time
  // (templates/meetings/_live_poller.html, on every live page) says so: "just now", ticking on
  // (data-ago), and its tooltip the clock time.
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.id !== "live-poller" || event.detail.xhr.status !== 204) { return; }
    var now = new Date();
    noteValuesConfirmed(now);
    var checked = event.detail.elt.querySelector(".js-checked");
    if (checked) {
      checked.setAttribute("datetime", now.toISOString());
      checked.title = checked.title.replace(/\d\d:\d\d:\d\d$/, now.toTimeString().slice(0, 8));
      tickClocks();
    }
  });

  // Briefly highlight the figures that changed in a refresh.
  var before = {};
  document.addEventListener("htmx:oobBeforeSwap", function (event) {
    if (event.detail.target.id !== "metric-values") { return; }
    before = {};
    event.detail.target.querySelectorAll("[data-metric], .badge").forEach(function (el) {
      before[el.dataset.metric || el.className] = el.textContent;
    });
  });
  document.addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target.id !== "metric-values") { return; }
    noteValuesConfirmed();
    event.detail.target.querySelectorAll("[data-metric], .badge").forEach(function (el) {
      var key = el.dataset.metric || el.className;
      if (before[key] !== el.textContent) {
        el.classList.add("is-changed");
        setTimeout(function () { el.classList.remove("is-changed"); }, 2500);
      }
    });
  });

  // The same for the rows of a triage table that a refresh replaced.
  var rowsBefore = null;
  function cellTexts() {
    var texts = {};
    document.querySelectorAll(".triage__row").forEach(function (row) {
      row.querySelectorAll("[data-cell]").forEach(function (cell) {
        texts[row.id + "/" + cell.dataset.cell] = cell.textContent.replace(/\s+/g, " ").trim();
      });
    });
    return texts;
  }
  function noteRowsBefore(event) {
    var id = event.detail.elt.id;
    if ((id === "live-poller" || id === "live-stream") && document.querySelector(".triage__row")) {
      rowsBefore = cellTexts();
    }
  }
  document.addEventListener("htmx:beforeSwap", noteRowsBefore);
  // Pushed rows come through the SSE extension, which swaps without a beforeSwap.
  document.addEventListener("htmx:sseBeforeMessage", noteRowsBefore);
  document.addEventListener("htmx:afterSettle", function (event) {
    if (!rowsBefore || event.detail.elt.id !== "live-poller") { return; }
    var after = cellTexts();
    var previous = rowsBefore;
    rowsBefore = null;
    Object.keys(after).forEach(function (key) {
      if (key in previous && previous[key] !== after[key]) {
        var parts = key.split("/");
        var cell = document.querySelector("#" + parts[0] + ' [data-cell="' + parts[1] + '"]');
        if (cell) {
          cell.classList.add("is-changed");
          setTimeout(function () { cell.classList.remove("is-changed"); }, 2500);
        }
      }
    });
  });

  // --- "Look it up again" after the console's lookup limit --------------------------------------
  // The page says how many seconds are left (data-wait); until then the button is held back and
  // counts down, then it is a plain link again. Without this file it is a plain link throughout.
  function setUpCountdowns(root) {
    root.querySelectorAll("a.js-countdown[data-wait]").forEach(function (link) {
      var wait = parseInt(link.dataset.wait, 10);
      if (!(wait > 0) || link.dataset.ready) { return; }
      link.dataset.ready = "1";
      var label = link.textContent;
      var href = link.getAttribute("href");
      var until = Date.now() + wait * 1000;
      var status = link.parentElement.querySelector(".js-countdown-status");
      // A link without its address cannot be followed; role and aria-disabled say it is unavailable.
      link.removeAttribute("href");
      link.setAttribute("role", "link");
      link.setAttribute("aria-disabled", "true");
      function tick() {
        var left = Math.ceil((until - Date.now()) / 1000);
        if (left > 0) {
          link.textContent = label + " in " + left + " s";
          setTimeout(tick, Math.min(1000, until - Date.now() - (left - 1) * 1000));
          return;
        }
        link.textContent = label;
        link.setAttribute("href", href);
        link.removeAttribute("role");
        link.removeAttribute("aria-disabled");
        if (status) { status.textContent = "Lookups pass again: you can look it up now."; }
      }
      tick();
    });
  }

  // --- Triage table and watch list: rows a refresh could not look up -------------------------
  // The server does not redraw such a row: it marks it "Not refreshed" (an out-of-band tag) and
  // the row keeps its last values. Each row carries when its values were received
  // (data-values-at: drawn by the server, and confirmed by each unchanged refresh); the tag says
  // "as of" that time, in the agent's own clock like the meeting page's.
  function markStaleRows() {
    document.querySelectorAll(".triage__row [data-stale] .js-row-as-of").forEach(function (span) {
      var row = span.closest(".triage__row");
      var at = row && row.dataset.valuesAt ? new Date(row.dataset.valuesAt) : null;
      if (!at || isNaN(at.getTime())) { return; }
      var text = "as of " + at.toTimeString().slice(0, 8);
      if (span.textContent !== text) { span.textContent = text; }
    });
  }
  document.addEventListener("htmx:afterRequest", function (event) {
    if (event.detail.elt.id !== "live-poller" || event.detail.xhr.status !== 204) { return; }
    // Unchanged: every row asked was looked up again (a table with rows not refreshed is never
    // answered 204), so their values are confirmed as of now.
    var now = new Date().toISOString();
    document.querySelectorAll(".triage__row[data-values-at]").forEach(function (row) {
      if (!row.querySelector("[data-stale]")) { row.dataset.valuesAt = now; }
    });
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    if (event.detail.elt.id === "live-poller") { markStaleRows(); }
  });

  function showLiveButtons(root) {
    root.querySelectorAll(".js-refresh-now").forEach(function (button) { button.hidden = false; });
  }

  document.addEventListener("htmx:afterSwap", function (event) {
    setUpCopyButtons(event.target);
    showLiveButtons(event.target);
    showPauseState();
    markStale();
    tickClocks();
  });
  document.addEventListener("DOMContentLoaded", function () {
    setUpCopyButtons(document);
    setUpCountdowns(document);
    showLiveButtons(document);
    showPauseState();
    var checked = document.querySelector("#live-poller .js-checked");
    if (checked) { noteValuesConfirmed(new Date(checked.getAttribute("datetime"))); }
    tickClocks();
  });
})();
