// The docs page's header (framex-rs's own code): runtime, start time, plugins loaded
// and failed, upstream health, migration modes, plugin cards and [docs] action
// buttons. It reads the JSON island #framex-overview that the server wrote and builds
// the DOM with textContent only: names and descriptions are data, never markup.
(function () {
  "use strict";
  var island = document.getElementById("framex-overview");
  var root = document.getElementById("framex-header");
  if (!island || !root) return;
  var data = JSON.parse(island.textContent);

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }
  function isWebUrl(url) {
    return typeof url === "string" && /^https?:\/\//i.test(url);
  }
  function link(url, text) {
    var a = el("a", "", text);
    a.href = url;
    a.target = "_blank";
    a.rel = "noopener noreferrer";
    return a;
  }

  var status = el("div", "fx-status");
  status.appendChild(el("span", "fx-runtime", "Runtime " + data.runtime));
  status.appendChild(el("span", "fx-started", "Started at " + data.started_at));
  var plugins = el("span", "fx-plugins");
  plugins.appendChild(el("span", "fx-loaded", data.plugins.loaded + " loaded"));
  plugins.appendChild(document.createTextNode(" · "));
  plugins.appendChild(el("span", data.plugins.failed ? "fx-failed" : "fx-none", data.plugins.failed + " failed"));
  status.appendChild(el("span", "fx-label", "Plugins"));
  status.appendChild(plugins);
  root.appendChild(status);

  if (data.buttons.length) {
    var toolbar = el("div", "fx-actions");
    data.buttons.forEach(function (button) {
      var node;
      if (button.method === "LINK" && button.auth_type === "none" && isWebUrl(button.url)) {
        node = link(button.url, button.title);
      } else {
        node = el("button", "", button.title);
        node.type = "button";
        node.disabled = true;
        node.title = "framex-rs does not run " + button.method + " action buttons yet";
      }
      node.className = "fx-action fx-action-" + button.variant;
      node.setAttribute("data-index", button.index);
      if (button.requires_confirmation && node.tagName === "A") {
        node.addEventListener("click", function (event) {
          var question = button.confirmation_message || ("Run " + button.title + "?");
          if (!window.confirm(question)) event.preventDefault();
        });
      }
      toolbar.appendChild(node);
    });
    root.appendChild(toolbar);
  }

  if (data.upstreams.length) {
    var upstreams = el("ul", "fx-upstreams");
    data.upstreams.forEach(function (u) {
      var item = el("li", "fx-upstream");
      var state = !u.discovered ? "not discovered" : (u.healthy ? "healthy" : "unhealthy");
      item.appendChild(el("code", "fx-upstream-url", u.url));
      item.appendChild(el("span", "fx-health fx-health-" + state.replace(" ", "-"), state));
      item.appendChild(el("span", "fx-operations", u.operations + " operations"));
      upstreams.appendChild(item);
    });
    root.appendChild(el("h3", "", "Upstreams"));
    root.appendChild(upstreams);
  }

  if (data.migration.length) {
    var routes = el("ul", "fx-migration");
    data.migration.forEach(function (r) {
      var item = el("li", "fx-route");
      item.appendChild(el("code", "fx-route-path", r.route));
      item.appendChild(el("span", "fx-mode fx-mode-" + r.mode, r.mode));
      if (!r.active) item.appendChild(el("span", "fx-inactive", "(no local plugin serves it)"));
      routes.appendChild(item);
    });
    root.appendChild(el("h3", "", "Migrating routes"));
    root.appendChild(routes);
  }

  if (data.cards.length) {
    var cards = el("div", "fx-cards");
    data.cards.forEach(function (p) {
      var card = el("div", "fx-card");
      card.appendChild(el("div", "fx-card-name", p.name));
      if (p.description) card.appendChild(el("div", "fx-card-description", p.description));
      var meta = el("div", "fx-card-meta");
      meta.appendChild(el("span", "fx-card-author", p.author || "—"));
      meta.appendChild(document.createTextNode(" · "));
      meta.appendChild(el("span", "fx-card-version", p.version || "—"));
      if (isWebUrl(p.url)) {
        meta.appendChild(document.createTextNode(" · "));
        var repo = link(p.url, "Repo");
        repo.className = "fx-card-repo";
        meta.appendChild(repo);
      }
      card.appendChild(meta);
      cards.appendChild(card);
    });
    root.appendChild(el("h3", "", "Plugins"));
    root.appendChild(cards);
  }
})();
