// Fernwood help centre: a tiny single-page app.
// The server returns the same shell for /spa/ and every /spa/... path; this
// script renders the view for the current URL into #spa-view, intercepts link
// clicks (history.pushState) and handles back/forward (popstate).
//
// Routes:
//   /spa/                    article list with a live filter (?q=...)
//   /spa/article/<slug>      one article
//   /spa/products            product finder (fetches /api/products)
(function () {
  "use strict";

  var ARTICLES = [
    { slug: "where-is-my-order", tag: "Orders", title: "Where is my order?",
      summary: "Track your parcel and find out when it will arrive.",
      body: ["As soon as your order leaves our workshop we email you a tracking link. Most orders placed before 2 pm on a working day ship the same day.",
             "If the tracking page has not updated for two working days, let us know and we will chase the carrier for you."] },
    { slug: "change-or-cancel", tag: "Orders", title: "Changing or cancelling an order",
      summary: "Edit the address or items before your parcel ships.",
      body: ["We can change or cancel an order until it has been packed. Contact us with your order number as soon as possible.",
             "Once the parcel has shipped you can still return it free of charge within 30 days."] },
    { slug: "delivery-times", tag: "Delivery", title: "Delivery times and costs",
      summary: "How long delivery takes and what it costs in your country.",
      body: ["Standard delivery in the Netherlands takes 1–2 working days and is free on orders over €50. Express delivery arrives the next working day.",
             "We ship to most of Europe, the UK and the US. See the shipping page for a full table of rates."] },
    { slug: "returns", tag: "Returns", title: "How to return an item",
      summary: "Free returns within 30 days, refunded within 5 days.",
      body: ["Start a return from your account, print the prepaid label and drop the parcel at any PostNL point.",
             "We refund to your original payment method within 5 working days of receiving the return. Plants and burnt candles cannot be returned."] },
    { slug: "care-linen-wool", tag: "Care", title: "Caring for linen and wool",
      summary: "Keep your tote, beanie and throw soft for years.",
      body: ["Wash linen at 30 °C and line dry; it softens with every wash. Wool rarely needs washing: air it outside and spot clean where needed.",
             "When you do wash wool, use a wool programme or hand wash in cool water with a gentle wool detergent, and dry flat."] },
    { slug: "succulent-care", tag: "Care", title: "Looking after your succulent",
      summary: "Light, water and the one mistake almost everyone makes.",
      body: ["Echeverias love a bright windowsill. Water thoroughly about every two weeks, and only when the soil has dried out completely.",
             "Overwatering is the most common problem: if the leaves turn soft and translucent, let the soil dry out and water less often."] },
    { slug: "payment-methods", tag: "Payments", title: "Payment methods we accept",
      summary: "Cards, iDEAL, Bancontact and gift cards.",
      body: ["We accept Visa, Mastercard and American Express, plus iDEAL and Bancontact. Card payments are encrypted and we never store your card details.",
             "Gift cards can be combined with any other payment method at checkout."] },
    { slug: "reset-password", tag: "Account", title: "Signing in and resetting your password",
      summary: "Trouble signing in? Here is what to do.",
      body: ["Use the email address you ordered with. If you have forgotten your password, choose “Forgot password” on the sign-in page and we will email you a link.",
             "The link is valid for one hour. Check your spam folder if it does not arrive within a few minutes."] },
    { slug: "contact-options", tag: "Contact", title: "Contact options",
      summary: "Phone, email or a message: real people in Utrecht.",
      body: ["Call us on +31 30 123 4567 (Mon–Fri 9:00–17:30), email hello@fernwood.example, or send us a message through the contact form.",
             "You are also welcome to visit our workshop and shop at Oudegracht 112 in Utrecht, Tuesday to Saturday."] }
  ];

  var view = document.getElementById("spa-view");
  if (!view) return;
  var productsCache = null;

  // --- tiny DOM helper ----------------------------------------------------
  function h(tag, attrs) {
    var el = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === null || value === undefined || value === false) return;
      if (key === "text") el.textContent = value;
      else if (key === "class") el.className = value;
      else el.setAttribute(key, value === true ? "" : value);
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined) continue;
      if (Array.isArray(child)) child.forEach(function (c) { el.append(c); });
      else el.append(child);
    }
    return el;
  }

  function setTitle(title) { document.title = title + " · Fernwood"; }

  function setTab(name) {
    document.querySelectorAll("[data-spa-tab]").forEach(function (a) {
      if (a.getAttribute("data-spa-tab") === name) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    });
  }

  // --- views ---------------------------------------------------------------
  function matches(article, q) {
    if (!q) return true;
    var hay = (article.title + " " + article.summary + " " + article.tag + " " + article.body.join(" ")).toLowerCase();
    return q.toLowerCase().split(/\s+/).every(function (word) { return hay.indexOf(word) !== -1; });
  }

  function renderArticleList(list, countEl, q) {
    var found = ARTICLES.filter(function (a) { return matches(a, q); });
    countEl.textContent = found.length + (found.length === 1 ? " article" : " articles");
    if (!found.length) {
      list.replaceChildren(h("li", { class: "empty-state" },
        h("p", { text: "No articles match “" + q + "”." }),
        h("a", { href: "/spa/article/contact-options", text: "Ask us directly instead" })));
      return;
    }
    list.replaceChildren.apply(list, found.map(function (a) {
      return h("li", null,
        h("a", { class: "article-card", href: "/spa/article/" + a.slug },
          h("span", { class: "tag", text: a.tag }),
          h("h3", { text: a.title }),
          h("p", { text: a.summary })));
    }));
  }

  function listView(params) {
    setTitle("Help centre");
    setTab("articles");
    var q = params.get("q") || "";
    var input = h("input", { type: "search", id: "help-search", name: "q", value: q,
      placeholder: "Search help articles…", autocomplete: "off", "aria-label": "Search help articles" });
    var count = h("p", { class: "muted", "aria-live": "polite" });
    var list = h("ul", { class: "article-list", id: "article-list" });
    input.addEventListener("input", function () {
      var value = input.value.trim();
      var url = value ? "/spa/?q=" + encodeURIComponent(value) : "/spa/";
      history.replaceState(null, "", url);
      renderArticleList(list, count, value);
    });
    renderArticleList(list, count, q);
    return [h("div", { class: "spa-toolbar" }, input, count), list];
  }

  function articleView(slug) {
    var article = ARTICLES.filter(function (a) { return a.slug === slug; })[0];
    if (!article) return notFoundView();
    setTitle(article.title);
    setTab(slug === "contact-options" ? "contact" : "articles");
    var related = ARTICLES.filter(function (a) { return a.tag === article.tag && a.slug !== slug; });
    var feedback = h("div", { class: "feedback" },
      h("p", { text: "Was this article helpful?" }),
      h("button", { type: "button", class: "btn btn-small", "data-helpful": "yes", text: "Yes" }),
      h("button", { type: "button", class: "btn btn-small btn-ghost", "data-helpful": "no", text: "No" }));
    feedback.addEventListener("click", function (ev) {
      var btn = ev.target.closest("[data-helpful]");
      if (!btn) return;
      var yes = btn.getAttribute("data-helpful") === "yes";
      feedback.replaceChildren(h("p", { text: yes
        ? "Thanks for letting us know!"
        : "Sorry about that. Our team is happy to help in person." }),
        yes ? null : h("a", { class: "btn btn-small", href: "/secure/", text: "Contact us" }));
    });
    return [h("article", { class: "article" },
      h("a", { class: "back", href: "/spa/", text: "← All help articles" }),
      h("span", { class: "tag", text: article.tag }),
      h("h2", { text: article.title }),
      h("div", { class: "article-body" }, article.body.map(function (p) { return h("p", { text: p }); })),
      related.length ? h("p", { class: "muted" }, "Related: ",
        related.map(function (a, i) {
          return [i ? ", " : "", h("a", { href: "/spa/article/" + a.slug, text: a.title })];
        }).flat()) : null,
      feedback)];
  }

  function renderProducts(list, products, sort) {
    var sorted = products.slice().sort(function (a, b) {
      if (sort === "price-asc") return a.price - b.price;
      if (sort === "price-desc") return b.price - a.price;
      return a.name.localeCompare(b.name);
    });
    list.replaceChildren.apply(list, sorted.map(function (p) {
      return h("li", { class: "finder-item" },
        h("img", { src: p.image, alt: "", width: "72", height: "72" }),
        h("div", null,
          h("a", { href: p.url, text: p.name }),
          h("p", { text: p.price_display + " · " + p.summary })));
    }));
  }

  function productsView() {
    setTitle("Product finder");
    setTab("products");
    var select = h("select", { id: "finder-sort", "aria-label": "Sort products" },
      h("option", { value: "name", text: "Sort by name" }),
      h("option", { value: "price-asc", text: "Price: low to high" }),
      h("option", { value: "price-desc", text: "Price: high to low" }));
    var list = h("ul", { class: "finder-grid", id: "finder-list" },
      h("li", { class: "muted", text: "Loading products…" }));
    var toolbar = h("div", { class: "spa-toolbar" }, select,
      h("p", { class: "muted", text: "Not sure what to pick? Here is everything we sell." }));
    function load() {
      if (productsCache) return Promise.resolve(productsCache);
      return fetch("/api/products", { headers: { Accept: "application/json" } })
        .then(function (res) { if (!res.ok) throw new Error("HTTP " + res.status); return res.json(); })
        .then(function (data) { productsCache = data.products; return productsCache; });
    }
    load().then(function (products) {
      renderProducts(list, products, select.value);
      select.addEventListener("change", function () { renderProducts(list, products, select.value); });
    }).catch(function () {
      list.replaceChildren(h("li", { class: "empty-state", text: "Products could not be loaded." }));
    });
    return [toolbar, list];
  }

  function notFoundView() {
    setTitle("Not found");
    setTab("");
    return [h("div", { class: "empty-state" },
      h("h2", { text: "We couldn't find that help page" }),
      h("p", { text: "It may have moved. Try searching all articles instead." }),
      h("a", { class: "btn", href: "/spa/", text: "All help articles" }))];
  }

  // --- router ----------------------------------------------------------------
  function route() {
    var path = location.pathname.replace(/\/+$/, "/");
    var params = new URLSearchParams(location.search);
    var m;
    if (path === "/spa/" || path === "/spa") return listView(params);
    if ((m = path.match(/^\/spa\/article\/([a-z0-9-]+)\/?$/))) return articleView(m[1]);
    if (/^\/spa\/products\/?$/.test(path)) return productsView();
    return notFoundView();
  }

  function render() {
    view.replaceChildren.apply(view, route());
    view.setAttribute("data-route", location.pathname);
  }

  document.addEventListener("click", function (ev) {
    if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
    var a = ev.target.closest("a[href]");
    if (!a || a.target || a.hasAttribute("download")) return;
    var url = new URL(a.href, location.href);
    if (url.origin !== location.origin || url.pathname.indexOf("/spa/") !== 0) return;
    ev.preventDefault();
    if (url.href !== location.href) history.pushState(null, "", url.href);
    render();
    window.scrollTo(0, 0);
  });

  window.addEventListener("popstate", render);
  render();
})();
