// The docs page's header (framex-rs's own code): runtime, start time, plugins loaded
// and failed, upstream health, migration modes, plugin cards (with their config view
// and newer release) and [docs] action buttons. It reads the JSON island
// #framex-overview that the server wrote and builds the DOM with textContent only:
// names and descriptions are data, never markup.
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

  // [docs] action buttons, run by the server (POST /docs/action-buttons/{i}/invoke
  // and …/open, as FrameX-kit): the page knows a button's title, method, auth kind
  // and inputs, never its URL, headers, body or password.
  var result = el("div", "fx-action-result");
  var form = el("div", "fx-action-form");
  form.hidden = true;
  function showResult(status, body) {
    result.textContent = "";
    result.appendChild(el("div", "fx-action-status", status));
    if (body !== undefined && body !== null && body !== "") result.appendChild(el("pre", "fx-action-body", body));
  }
  function openWeb(url) {
    if (isWebUrl(url)) window.open(url, "_blank", "noopener,noreferrer");
  }
  // Popup blockers let a window open only in the click's own task, not when an answer
  // comes later: a button that opens a window after its request opens a blank one in
  // the click (cut from this page: no opener), sent on when the answer names a URL.
  function blankWindow() {
    var w = window.open("", "_blank");
    if (w) w.opener = null;
    return w;
  }
  // Sends a window from blankWindow() to `url` (an http(s) URL, without a Referer, as
  // openWeb does); closes it when there is none.
  function sendWindow(w, url) {
    if (!isWebUrl(url)) {
      if (w) w.close();
      return;
    }
    if (!w || w.closed) {
      openWeb(url);
      return;
    }
    try {
      var a = w.document.createElement("a");
      a.href = url;
      a.rel = "noreferrer";
      w.document.body.appendChild(a);
      a.click();
    } catch (e) {
      w.location.replace(url);
    }
  }
  function post(button, action, payload) {
    return fetch("/docs/action-buttons/" + button.index + "/" + action, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(payload)
    }).then(function (response) {
      var login = response.headers.get("X-FrameX-OAuth-Redirect");
      if (response.status === 401 && login) {
        window.location.assign(login);
        return null;
      }
      return response.text().then(function (text) {
        var parsed = null;
        try { parsed = JSON.parse(text); } catch (e) { parsed = null; }
        return { status: response.status, text: text, data: parsed };
      });
    });
  }
  // Runs a button; called in a click (the button's, or its form's "Run").
  function run(button, node, payload) {
    node.disabled = true;
    showResult(button.title + ": running…");
    var action = button.method === "LINK" ? "open" : "invoke";
    var win = action === "open" || button.opens_url ? blankWindow() : null;
    post(button, action, payload).then(function (answer) {
      var d = answer && answer.data;
      if (!answer) {
        sendWindow(win, null);
      } else if (action === "open" && d && d.open_url) {
        showResult(button.title + ": opened");
        sendWindow(win, d.open_url);
      } else if (action === "invoke" && d && Object.prototype.hasOwnProperty.call(d, "body")) {
        showResult(button.title + ": status " + d.status_code, d.body);
        sendWindow(win, d.open_url);
      } else {
        sendWindow(win, null);
        showResult(button.title + ": status " + answer.status, d && d.message ? d.message : answer.text);
      }
    }, function (error) {
      sendWindow(win, null);
      showResult(button.title + ": request failed: " + error);
    }).then(function () { node.disabled = false; });
  }
  // The form of a button with inputs or a password; its "Run" sends them.
  function ask(button, node) {
    form.textContent = "";
    form.hidden = false;
    var fields = [];
    button.inputs.forEach(function (input) {
      var label = el("label", "", input.label || input.name);
      var field = document.createElement("input");
      field.name = input.name;
      field.placeholder = input.placeholder || "";
      field.value = input["default"] || "";
      field.required = !!input.required;
      label.appendChild(field);
      form.appendChild(label);
      fields.push(field);
    });
    var password = null;
    if (button.auth_type === "password") {
      var pwLabel = el("label", "", "Password");
      password = document.createElement("input");
      password.type = "password";
      password.name = "fx-action-password";
      pwLabel.appendChild(password);
      form.appendChild(pwLabel);
    }
    var go = el("button", "fx-action fx-action-" + button.variant, "Run " + button.title);
    go.type = "button";
    go.className += " fx-action-run";
    var cancel = el("button", "fx-action", "Cancel");
    cancel.type = "button";
    cancel.addEventListener("click", function () { form.hidden = true; });
    go.addEventListener("click", function () {
      var inputs = {};
      fields.forEach(function (f) { inputs[f.name] = f.value; });
      var payload = { inputs: inputs, auth: password ? { password: password.value } : {} };
      form.hidden = true;
      run(button, node, payload);
    });
    form.appendChild(go);
    form.appendChild(cancel);
    (fields[0] || password || go).focus();
  }
  function press(button, node) {
    if (button.requires_confirmation) {
      var question = button.confirmation_message || ("Run " + button.title + "?");
      if (!window.confirm(question)) return;
    }
    if (button.method === "LINK" && button.auth_type !== "password") {
      // Opened in the click itself: the server's GET …/open sends the new window
      // through the login if needed, then to the link (no password to send).
      window.open("/docs/action-buttons/" + button.index + "/open", "_blank", "noopener,noreferrer");
      return;
    }
    if (button.inputs.length || button.auth_type === "password") {
      ask(button, node);
      return;
    }
    run(button, node, { inputs: {}, auth: {} });
  }
  if (data.buttons.length) {
    var toolbar = el("div", "fx-actions");
    data.buttons.forEach(function (button) {
      var node = el("button", "fx-action fx-action-" + button.variant, button.title);
      node.type = "button";
      node.setAttribute("data-index", button.index);
      node.addEventListener("click", function () { press(button, node); });
      toolbar.appendChild(node);
    });
    root.appendChild(toolbar);
    root.appendChild(form);
    root.appendChild(result);
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

  // A newer release of a plugin's repository (GET /docs/plugin-release, as
  // FrameX-kit): a mark linking to the repository; nothing when there is none.
  function release(p, meta) {
    fetch("/docs/plugin-release?plugin=" + encodeURIComponent(p.name), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (d) {
        if (!d || !d.has_update || !d.latest_version) return;
        meta.appendChild(document.createTextNode(" · "));
        var mark = link(isWebUrl(d.repo_url) ? d.repo_url : p.url, "New release: " + d.latest_version);
        mark.className = "fx-card-update";
        meta.appendChild(mark);
      }, function () {});
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
        if (data.config_view) {
          meta.appendChild(document.createTextNode(" · "));
          var config = link("/docs/plugin-config?plugin=" + encodeURIComponent(p.name), "View Config");
          config.className = "fx-card-config";
          meta.appendChild(config);
        }
        if (p.version) release(p, meta);
      }
      card.appendChild(meta);
      cards.appendChild(card);
    });
    root.appendChild(el("h3", "", "Plugins"));
    root.appendChild(cards);
  }
})();
