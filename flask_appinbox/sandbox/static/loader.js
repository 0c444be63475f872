/*
 * Flask-AppInbox sandbox: a local stand-in for eSputnik's script, served at
 * <prefix>/sandbox/loader.js. Never used with APPINBOX_SANDBOX off.
 *
 * It implements eS: it drains the queue that the page's stub filled (eS.q),
 * then takes calls directly. 'init' with APP_INBOX asks getAuthTokenCallback
 * for a token and shows a bell with the unread count in #appinbox-bell (or in
 * a corner of the page when there is none); a click opens the list of
 * messages and marks them read. 'init' without APP_INBOX, and every other
 * command, is tracking, which the sandbox ignores.
 *
 * The bell sits inline, on the line of what is next to it: a #appinbox-bell
 * that the site's CSS leaves a plain block is made inline-block (see inline()).
 * It takes the colour of the text around it (a nav-link's on a dark navbar).
 * The list opens under the bell (over it in the corner) and is kept inside the
 * viewport, also while the window is resized (see Bell.prototype.place).
 *
 * Message calls carry the token in an ES-TOKEN header. eSputnik answers each
 * call with the next token in an ES-TOKEN header and the script uses it. A
 * sandbox token is good for one call, and the sandbox says so in each answer
 * (X-Sandbox-Token: spent): the script then calls getAuthTokenCallback (a
 * renewal, {"renew": true}) before its next call, so a healthy page sends no
 * call that is refused. A token invalidated otherwise (a logout in another tab)
 * is refused with 401; the script renews and tries once more.
 *
 * The widget's words follow init's language for the languages in LABELS;
 * others get English. The messages themselves are the site's (the sandbox's
 * demo messages are English).
 *
 * The DOM is built with createElement and textContent only, and styled through
 * element.style (CSSOM), which no Content-Security-Policy blocks.
 */
(function (window, document) {
  "use strict";

  if (window.eS && window.eS.sandbox) {
    return; // loaded twice
  }

  var script = document.currentScript || document.querySelector('script[src*="/sandbox/loader.js"]');
  var API = (script ? script.src : "").replace(/\/loader\.js(?:[?#].*)?$/, "") + "/api/v1/appinbox/messages";
  var PAGE_SIZE = 20;
  var REFRESH_MS = 60000;
  var FONT = 'system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';
  var SVG = "http://www.w3.org/2000/svg";
  var PANEL_WIDTH = 340; // px, narrower on a narrower viewport
  var PANEL_HEIGHT = 440; // px at most, less when the viewport has less room
  var PANEL_MIN_HEIGHT = 120; // px: shorter than this is no use, even if the viewport has less room
  var GAP = 8; // px between the bell and the panel
  var EDGE = 12; // px at least between the panel and the viewport's edges

  // The widget's words in the languages the sandbox has; any other language gets English.
  var LABELS = {
    en: {
      title: "Notifications",
      loading: "Loading\u2026",
      empty: "No messages yet.",
      failed: "The messages cannot be loaded just now.",
      open: "Open",
      unread: "Notifications, {n} unread"
    },
    es: {
      title: "Notificaciones",
      loading: "Cargando\u2026",
      empty: "A\u00fan no hay mensajes.",
      failed: "Ahora no se pueden cargar los mensajes.",
      open: "Abrir",
      unread: "Notificaciones, {n} sin leer"
    },
    de: {
      title: "Benachrichtigungen",
      loading: "Wird geladen\u2026",
      empty: "Noch keine Nachrichten.",
      failed: "Die Nachrichten k\u00f6nnen gerade nicht geladen werden.",
      open: "\u00d6ffnen",
      unread: "Benachrichtigungen, {n} ungelesen"
    },
    fr: {
      title: "Notifications",
      loading: "Chargement\u2026",
      empty: "Aucun message pour l\u2019instant.",
      failed: "Les messages ne peuvent pas \u00eatre charg\u00e9s pour le moment.",
      open: "Ouvrir",
      unread: "Notifications, {n} non lues"
    },
    uk: {
      title: "\u0421\u043f\u043e\u0432\u0456\u0449\u0435\u043d\u043d\u044f",
      loading: "\u0417\u0430\u0432\u0430\u043d\u0442\u0430\u0436\u0435\u043d\u043d\u044f\u2026",
      empty: "\u041f\u043e\u0432\u0456\u0434\u043e\u043c\u043b\u0435\u043d\u044c \u0449\u0435 \u043d\u0435\u043c\u0430\u0454.",
      failed: "\u0417\u0430\u0440\u0430\u0437 \u043d\u0435 \u0432\u0434\u0430\u0454\u0442\u044c\u0441\u044f \u0437\u0430\u0432\u0430\u043d\u0442\u0430\u0436\u0438\u0442\u0438 \u043f\u043e\u0432\u0456\u0434\u043e\u043c\u043b\u0435\u043d\u043d\u044f.",
      open: "\u0412\u0456\u0434\u043a\u0440\u0438\u0442\u0438",
      unread: "\u0421\u043f\u043e\u0432\u0456\u0449\u0435\u043d\u043d\u044f, \u043d\u0435\u043f\u0440\u043e\u0447\u0438\u0442\u0430\u043d\u0438\u0445: {n}"
    }
  };

  function label(language, name, count) {
    var words = LABELS[String(language).slice(0, 2).toLowerCase()] || LABELS.en;
    return words[name].replace("{n}", String(count));
  }

  function css(element, properties) {
    for (var name in properties) {
      if (Object.prototype.hasOwnProperty.call(properties, name)) {
        element.style[name] = properties[name];
      }
    }
    return element;
  }

  function el(tag, properties, text) {
    var element = css(document.createElement(tag), properties || {});
    if (text !== undefined && text !== null) {
      element.textContent = String(text);
    }
    return element;
  }

  function warn(message, error) {
    if (window.console && console.warn) {
      console.warn("App Inbox sandbox: " + message, error || "");
    }
  }

  function NoContact() {
    this.message = "the site's contact is unknown (empty token)";
  }

  // -- message calls ------------------------------------------------------------

  function Client(getAuthToken) {
    var token = null; // null: ask getAuthTokenCallback before the next call
    var queue = Promise.resolve();

    function fresh() {
      return Promise.resolve().then(function () {
        return getAuthToken();
      }).then(function (value) {
        if (typeof value !== "string") {
          throw new Error("getAuthTokenCallback did not resolve to a string");
        }
        if (!value) {
          throw new NoContact();
        }
        token = value;
        return value;
      });
    }

    function attempt(method, path, body, mayRenew) {
      return (token === null ? fresh() : Promise.resolve(token)).then(function (value) {
        var init = {
          method: method,
          headers: {"ES-TOKEN": value, "Accept": "application/json"},
          credentials: "omit",
          cache: "no-store"
        };
        if (body !== undefined) {
          init.headers["Content-Type"] = "application/json";
          init.body = JSON.stringify(body);
        }
        return fetch(API + path, init);
      }).then(function (response) {
        token = response.headers.get("ES-TOKEN") || token;
        if (response.headers.get("X-Sandbox-Token") === "spent") {
          token = null; // renew through getAuthTokenCallback before the next call
        }
        if (response.status === 401) {
          token = null; // invalidated: renew through getAuthTokenCallback
          if (mayRenew) {
            return attempt(method, path, body, false);
          }
        }
        if (!response.ok) {
          throw new Error(method + " " + path + ": HTTP " + response.status);
        }
        return response.json();
      });
    }

    // One call at a time, so that two calls never renew the token at once.
    this.call = function (method, path, body) {
      var run = function () {
        return attempt(method, path, body, true);
      };
      var result = queue.then(run, run);
      queue = result.catch(function () {});
      return result;
    };
  }

  // -- the bell -----------------------------------------------------------------

  function Bell(client, language) {
    this.client = client;
    this.language = language;
    this.open = false;
    this.counting = null;
    this.lastCount = 0;
  }

  Bell.prototype.start = function () {
    var bell = this;
    return this.refresh().then(function () {
      bell.mount();
      document.addEventListener("visibilitychange", function () {
        if (document.visibilityState === "visible") {
          bell.refresh();
        }
      });
      window.setInterval(function () {
        if (document.visibilityState === "visible" && !bell.open) {
          bell.refresh();
        }
      }, REFRESH_MS);
    }, function (error) {
      if (error instanceof NoContact) {
        warn(error.message + "; no bell");
      } else {
        warn("cannot show the bell", error);
      }
    });
  };

  Bell.prototype.refresh = function () {
    var bell = this;
    if (!this.counting) {
      this.counting = this.client.call("GET", "/count").then(function (body) {
        bell.setCount(body.count);
      }).then(function () {
        bell.counting = null;
      }, function (error) {
        bell.counting = null;
        throw error;
      });
    }
    return this.counting;
  };

  // The site's placeholder is a <div>: a block, which would break an inline row
  // of links in two. When it is still a plain block (no display in its style
  // attribute, and a computed display of "block") it becomes inline-block,
  // centred on the line. As a flex or grid item it is laid out as a block all
  // the same, so nothing changes there. A display that the site's CSS chose
  // (flex, inline, none, ...) is left alone; a site that wants a block after all
  // says so with !important or in the element's style attribute.
  function inline(host) {
    if (!host.style.display && window.getComputedStyle(host).display === "block") {
      css(host, {display: "inline-block", verticalAlign: "middle"});
    }
  }

  Bell.prototype.mount = function () {
    var bell = this;
    var host = document.getElementById("appinbox-bell");
    var corner = this.corner = !host;
    if (corner) {
      host = css(el("div"), {position: "fixed", right: "20px", bottom: "20px", zIndex: "2147483000"});
      document.body.appendChild(host);
    } else {
      inline(host);
    }
    var root = this.root = el("div", {
      position: "relative", display: "inline-block", verticalAlign: "middle", fontFamily: FONT
    });
    root.setAttribute("data-appinbox", "root");

    // Inline, the bell takes the colour of the text around it and a translucent grey on hover, which shows
    // on a light and on a dark background alike; in the corner it is dark on a white disc.
    var rest = corner ? "#ffffff" : "transparent";
    var hover = corner ? "#eef2f7" : "rgba(127, 127, 127, 0.18)";
    var button = this.button = el("button", {
      position: "relative", display: "inline-flex", alignItems: "center", justifyContent: "center",
      verticalAlign: "top", width: "40px", height: "40px", padding: "0", border: "0", borderRadius: "50%",
      cursor: "pointer", color: corner ? "#1f2933" : "inherit", background: rest,
      boxShadow: corner ? "0 4px 14px rgba(15, 23, 42, 0.18)" : "none"
    });
    button.type = "button";
    button.setAttribute("data-appinbox", "button");
    button.setAttribute("aria-haspopup", "true");
    button.setAttribute("aria-expanded", "false");
    button.appendChild(bellIcon());
    button.addEventListener("mouseenter", function () {
      button.style.background = hover;
    });
    button.addEventListener("mouseleave", function () {
      button.style.background = rest;
    });

    var badge = this.badge = el("span", {
      position: "absolute", top: "1px", right: "0", minWidth: "18px", height: "18px", padding: "0 5px",
      boxSizing: "border-box", borderRadius: "9px", background: "#e12d39", color: "#ffffff",
      font: "700 11px/18px " + FONT, textAlign: "center", display: "none"
    });
    badge.setAttribute("data-appinbox", "badge");
    badge.setAttribute("aria-hidden", "true");
    button.appendChild(badge);

    var panel = this.panel = el("div", {
      position: "absolute", right: "0", width: PANEL_WIDTH + "px", maxHeight: PANEL_HEIGHT + "px",
      boxSizing: "border-box", overflowY: "auto", background: "#ffffff", color: "#1f2933",
      border: "1px solid #e4e7eb", borderRadius: "12px", boxShadow: "0 12px 32px rgba(15, 23, 42, 0.18)",
      font: "14px/1.45 " + FONT, textAlign: "left", zIndex: "2147483000", display: "none"
    });
    panel.id = "appinbox-sandbox-panel";
    panel.setAttribute("data-appinbox", "panel");
    panel.setAttribute("role", "region");
    panel.setAttribute("aria-label", label(this.language, "title"));
    panel.lang = this.language;
    button.setAttribute("aria-controls", panel.id);

    root.appendChild(button);
    root.appendChild(panel);
    host.appendChild(root);
    this.setCount(this.lastCount);

    button.addEventListener("click", function () {
      if (bell.open) {
        bell.close();
      } else {
        bell.show();
      }
    });
    document.addEventListener("click", function (event) {
      if (bell.open && !root.contains(event.target)) {
        bell.close();
      }
    });
    document.addEventListener("keydown", function (event) {
      if (bell.open && event.key === "Escape") {
        bell.close();
        button.focus();
      }
    });
    window.addEventListener("resize", function () {
      if (bell.open) {
        bell.place();
      }
    });
  };

  // The viewport's size less its scroll bars.
  function viewport() {
    var root = document.documentElement;
    var standards = document.compatMode === "CSS1Compat";
    return {
      width: standards && root.clientWidth ? root.clientWidth : window.innerWidth,
      height: standards && root.clientHeight ? root.clientHeight : window.innerHeight
    };
  }

  // Puts the open panel inside the viewport. Across: its right edge under the
  // bell's right edge; its left edge under the bell's left edge when that does
  // not fit (a bell at the left of the page); then moved in from the viewport's
  // edges, and narrowed to fit a narrow viewport. Down: under the bell (over it
  // in the corner), or on the other side when that has more room and this side
  // is too short, never taller than the room there.
  Bell.prototype.place = function () {
    var view = viewport();
    var bell = this.button.getBoundingClientRect();
    var origin = this.root.getBoundingClientRect(); // the panel's containing block
    var width = Math.max(0, Math.min(PANEL_WIDTH, view.width - 2 * EDGE));
    var left = bell.right - width;
    if (left < EDGE) {
      left = bell.left;
    }
    left = Math.max(EDGE, Math.min(left, view.width - EDGE - width));

    var below = view.height - bell.bottom - GAP - EDGE;
    var above = bell.top - GAP - EDGE;
    var down = !this.corner;
    var here = down ? below : above;
    var there = down ? above : below;
    if (here < PANEL_HEIGHT && there > here) {
      down = !down;
    }
    var room = down ? below : above;
    css(this.panel, {
      left: Math.round(left - origin.left) + "px", right: "auto", width: width + "px", maxWidth: "none",
      top: down ? "calc(100% + " + GAP + "px)" : "auto", bottom: down ? "auto" : "calc(100% + " + GAP + "px)",
      maxHeight: Math.max(PANEL_MIN_HEIGHT, Math.min(PANEL_HEIGHT, Math.floor(room))) + "px"
    });
  };

  Bell.prototype.setCount = function (count) {
    count = typeof count === "number" && count > 0 ? Math.floor(count) : 0;
    this.lastCount = count;
    if (!this.badge) {
      return;
    }
    this.badge.textContent = count > 99 ? "99+" : String(count);
    this.badge.style.display = count ? "inline-block" : "none";
    this.button.setAttribute("aria-label", label(this.language, count ? "unread" : "title", count));
  };

  Bell.prototype.show = function () {
    var bell = this;
    this.open = true;
    this.button.setAttribute("aria-expanded", "true");
    this.place();
    this.panel.style.display = "block";
    this.fill([note(label(bell.language, "loading"))]);
    this.client.call("GET", "?page=0&size=" + PAGE_SIZE).then(function (body) {
      var messages = body && Array.isArray(body.messages) ? body.messages : [];
      bell.fill(messages.length ? [list(messages, bell.language)] : [note(label(bell.language, "empty"))]);
      var unread = messages.filter(function (m) {
        return m.status === "UNREAD";
      }).map(function (m) {
        return m.id;
      });
      if (unread.length) {
        return bell.client.call("PUT", "/status", {ids: unread, status: "READ"}).then(function (answer) {
          bell.setCount(answer.count);
        });
      }
    }).catch(function (error) {
      warn("cannot load the messages", error);
      bell.fill([note(label(bell.language, "failed"))]);
    });
  };

  Bell.prototype.close = function () {
    this.open = false;
    this.button.setAttribute("aria-expanded", "false");
    this.panel.style.display = "none";
  };

  Bell.prototype.fill = function (children) {
    var panel = this.panel;
    while (panel.firstChild) {
      panel.removeChild(panel.firstChild);
    }
    panel.appendChild(el("div", {
      padding: "12px 16px", fontWeight: "700", fontSize: "15px", borderBottom: "1px solid #e4e7eb"
    }, label(this.language, "title")));
    children.forEach(function (child) {
      panel.appendChild(child);
    });
  };

  function note(text) {
    return el("div", {padding: "16px", color: "#616e7c"}, text);
  }

  function list(messages, language) {
    var ul = el("ul", {listStyle: "none", margin: "0", padding: "0"});
    messages.forEach(function (message) {
      var unread = message.status === "UNREAD";
      var li = el("li", {
        position: "relative", padding: "12px 16px 12px 30px", borderBottom: "1px solid #f0f2f5",
        background: unread ? "#f0f6ff" : "#ffffff"
      });
      li.setAttribute("data-appinbox", "message");
      li.setAttribute("data-status", unread ? "UNREAD" : "READ");
      if (unread) {
        li.appendChild(el("span", {
          position: "absolute", left: "12px", top: "19px", width: "8px", height: "8px",
          borderRadius: "50%", background: "#2a6df4"
        }));
      }
      li.appendChild(el("div", {fontWeight: unread ? "700" : "600"}, message.title));
      if (message.text) {
        li.appendChild(el("div", {marginTop: "2px", color: "#3e4c59", whiteSpace: "pre-line"}, message.text));
      }
      var meta = el("div", {marginTop: "6px", fontSize: "12px", color: "#7b8794"}, when(message.date, language));
      var href = safeLink(message.link);
      if (href) {
        var a = el("a", {marginLeft: "10px", color: "#2a6df4"}, label(language, "open"));
        a.href = href;
        a.rel = "noopener noreferrer";
        meta.appendChild(a);
      }
      li.appendChild(meta);
      ul.appendChild(li);
    });
    return ul;
  }

  function when(iso, language) {
    var date = new Date(iso);
    if (isNaN(date.getTime())) {
      return "";
    }
    try {
      return date.toLocaleString(language, {dateStyle: "medium", timeStyle: "short"});
    } catch (e) {
      return date.toLocaleString();
    }
  }

  function safeLink(link) {
    if (typeof link !== "string" || !link) {
      return null;
    }
    try {
      var url = new URL(link, window.location.href);
      return url.protocol === "https:" || url.protocol === "http:" ? url.href : null;
    } catch (e) {
      return null;
    }
  }

  function bellIcon() {
    var svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "24");
    svg.setAttribute("height", "24");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    svg.setAttribute("aria-hidden", "true");
    svg.setAttribute("focusable", "false");
    ["M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9", "M13.73 21a2 2 0 0 1-3.46 0"].forEach(function (d) {
      var path = document.createElementNS(SVG, "path");
      path.setAttribute("d", d);
      svg.appendChild(path);
    });
    return svg;
  }

  // -- eS -----------------------------------------------------------------------

  var initialised = false;

  function dispatch(args) {
    if (!args || args[0] !== "init") {
      return; // tracking commands: nothing to show in the sandbox
    }
    if (initialised) {
      warn("'init' was called more than once on this page; only the first counts");
      return;
    }
    initialised = true;
    var flags = args[1] || {};
    var options = args[2] || {};
    if (!flags.APP_INBOX) {
      return; // tracking only
    }
    if (typeof options.getAuthTokenCallback !== "function") {
      warn("'init' with APP_INBOX needs a getAuthTokenCallback function");
      return;
    }
    var language = typeof options.language === "string" && options.language ? options.language : "en";
    var bell = new Bell(new Client(options.getAuthTokenCallback), language);
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", function () {
        bell.start();
      });
    } else {
      bell.start();
    }
  }

  function isArguments(value) {
    return Object.prototype.toString.call(value) === "[object Arguments]" || Array.isArray(value);
  }

  var pending = window.eS && window.eS.q ? Array.prototype.slice.call(window.eS.q) : [];

  function eS() {
    try {
      dispatch(arguments);
    } catch (error) {
      warn("a call failed", error);
    }
  }
  eS.sandbox = true;
  eS.q = [];
  window.eS = eS;

  // The stub pushes its own arguments, whose only item is the call's arguments.
  pending.forEach(function (entry) {
    eS.apply(null, entry && entry.length === 1 && isArguments(entry[0]) ? entry[0] : entry);
  });
})(window, document);
