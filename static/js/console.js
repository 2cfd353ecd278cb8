// Small progressive enhancements for the console. Everything works without this file.
(function () {
  "use strict";

  // Show times in the agent's own timezone: the server reads this cookie.
  try {
    var zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && document.cookie.indexOf("console_tz=" + zone) === -1) {
      document.cookie = "console_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; SameSite=Lax";
    }
  } catch (e) { /* an old browser: the server's timezone is used */ }

  function setUpCopyButtons(root) {
    root.querySelectorAll(".js-copy[data-copy-target]").forEach(function (button) {
      if (!navigator.clipboard) { return; }
      button.hidden = false;
      if (button.dataset.ready) { return; }
      button.dataset.ready = "1";
      button.addEventListener("click", function () {
        var target = document.getElementById(button.dataset.copyTarget);
        var status = button.parentElement.querySelector(".copy-status");
        navigator.clipboard.writeText(target.textContent.trim()).then(function () {
          button.textContent = "Copied";
          if (status) { status.textContent = "Copied to the clipboard"; }
          setTimeout(function () { button.textContent = button.dataset.label || "Copy"; }, 1500);
        });
      });
      button.dataset.label = button.textContent;
    });
  }

  // "/" jumps to the lookup box, unless the agent is typing somewhere.
  document.addEventListener("keydown", function (event) {
    if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey) { return; }
    var active = document.activeElement;
    if (active && (active.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName))) { return; }
    var box = document.getElementById("id_q");
    if (box) { event.preventDefault(); box.focus(); box.select(); }
  });

  document.addEventListener("DOMContentLoaded", function () { setUpCopyButtons(document); });
  document.addEventListener("htmx:afterSwap", function (event) { setUpCopyButtons(event.target); });
})();
