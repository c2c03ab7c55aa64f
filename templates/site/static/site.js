/* The site's one script: stars and the reading list (localStorage), BibTeX export, the day
   page's filters, and search over every digest from the prebuilt index (search/YYYY-MM.js).
   Untrusted text (titles, authors, abstracts, analyses) only ever goes in as textContent. */
(function () {
  "use strict";

  var STORE = "arxiv-digest:reading-list";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) {
    return Array.prototype.slice.call((root || document).querySelectorAll(selector));
  }
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  /* -- the reading list: an array of paper records, oldest star first ------------------- */

  function loadList() {
    try {
      var list = JSON.parse(window.localStorage.getItem(STORE) || "[]");
      return Array.isArray(list) ? list.filter(function (p) { return p && typeof p.id === "string"; }) : [];
    } catch (e) {
      return [];  // storage disabled or damaged: an empty list, never an error
    }
  }
  function saveList(list) {
    try {
      window.localStorage.setItem(STORE, JSON.stringify(list));
    } catch (e) { /* storage full or disabled: the star lasts until the page closes */ }
  }
  function toggleStar(record) {
    var list = loadList();
    var kept = list.filter(function (p) { return p.id !== record.id; });
    if (kept.length === list.length) { kept.push(record); }
    saveList(kept);
    refreshStars();
    return kept.length > list.length;
  }

  function starButton(record) {
    var button = el("button", "star");
    button.type = "button";
    button.setAttribute("data-star", "");
    button.starRecord = record;
    return button;
  }
  function showStar(button, on) {
    button.setAttribute("aria-pressed", on ? "true" : "false");
    button.textContent = on ? "★ Starred" : "☆ Star";
    button.title = on ? "Remove from the reading list" : "Add to the reading list";
  }
  function refreshStars() {
    var ids = {};
    var list = loadList();
    list.forEach(function (p) { ids[p.id] = true; });
    $all("[data-star]").forEach(function (button) {
      var record = button.starRecord;
      if (record) { showStar(button, ids[record.id] === true); }
    });
    $all("[data-star-count]").forEach(function (node) {
      node.textContent = list.length ? "(" + list.length + ")" : "";
    });
  }

  function parseJSON(text, fallback) {
    try { return JSON.parse(text); } catch (e) { return fallback; }
  }
  function recordFromArticle(article) {
    return {
      id: article.getAttribute("data-id"),
      day: article.getAttribute("data-day"),
      title: article.getAttribute("data-title"),
      authors: parseJSON(article.getAttribute("data-authors"), []),
      categories: parseJSON(article.getAttribute("data-categories"), []),
      primary: article.getAttribute("data-primary") || "",
      published: article.getAttribute("data-published")
    };
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest ? event.target.closest("[data-star]") : null;
    if (!button || !button.starRecord) { return; }
    event.preventDefault();
    toggleStar(button.starRecord);
    if ($("[data-reading-list]")) { renderReadingList(); }
  });

  /* -- BibTeX ------------------------------------------------------------------------------ */

  // A field value inside braces: BibTeX needs its braces balanced. Balanced TeX (arXiv titles
  // carry $\mathcal{X}$) is kept as arXiv's own export keeps it; unbalanced braces are spelled out.
  function bibValue(text) {
    var value = String(text || "").replace(/\s+/g, " ").trim();
    var depth = 0;
    var balanced = true;
    for (var i = 0; i < value.length; i++) {
      if (value[i] === "{") { depth++; }
      if (value[i] === "}") { depth--; if (depth < 0) { balanced = false; } }
    }
    if (!balanced || depth !== 0) {
      value = value.replace(/[{}]/g, function (c) {
        return c === "{" ? "\\textbraceleft{}" : "\\textbraceright{}";
      });
    }
    return value;
  }
  function bibAuthor(name) {
    var value = bibValue(name);
    // " and " separates authors in BibTeX: a name that contains it stays one name in braces.
    return /\sand\s/i.test(value) ? "{" + value + "}" : value;
  }
  function bibEntry(p) {
    var id = String(p.id);
    var lines = [
      "@misc{arXiv:" + id.replace(/[^A-Za-z0-9.:-]/g, "_") + ",",
      "  title = {" + bibValue(p.title) + "},",
      "  author = {" + (p.authors || []).map(bibAuthor).filter(Boolean).join(" and ") + "},",
      "  year = {" + String(p.published || p.day || "").slice(0, 4) + "},",
      "  eprint = {" + bibValue(id.replace(/v[0-9]+$/, "")) + "},",
      "  archivePrefix = {arXiv},"
    ];
    var primary = p.primary || (p.categories || [])[0];
    if (primary) { lines.push("  primaryClass = {" + bibValue(primary) + "},"); }
    lines.push("  url = {https://arxiv.org/abs/" + bibValue(id) + "}");
    lines.push("}");
    return lines.join("\n");
  }
  function bibtex(list) {
    return list.map(bibEntry).join("\n\n") + (list.length ? "\n" : "");
  }

  /* -- the reading list page --------------------------------------------------------------- */

  var downloadUrl = null;

  function renderReadingList() {
    var target = $("[data-reading-list]");
    var list = loadList();
    target.textContent = "";
    list.forEach(function (p) {
      target.appendChild(resultItem(p, null));
    });
    $("[data-reading-status]").textContent = list.length
      ? list.length + " starred paper" + (list.length === 1 ? "" : "s") + ", kept in this browser."
      : "No paper starred yet: star papers on a digest or in the search.";
    var text = bibtex(list);
    $("[data-bibtex]").value = text;
    var link = $("[data-bibtex-download]");
    if (downloadUrl) { URL.revokeObjectURL(downloadUrl); }
    downloadUrl = URL.createObjectURL(new Blob([text], { type: "application/x-bibtex" }));
    link.href = downloadUrl;
    refreshStars();
  }

  /* -- one paper in a list (search results, reading list) ---------------------------------- */

  function resultItem(p, snippet) {
    var item = el("li");
    item.setAttribute("data-result", p.id);
    var head = el("div", "paper-head");
    var link = el("a", null, p.title);
    link.href = encodeURIComponent(p.day) + ".html#" + encodeURIComponent(p.id);
    var title = el("strong");
    title.appendChild(link);
    head.appendChild(title);
    head.appendChild(starButton(p));
    item.appendChild(head);
    var authors = (p.authors || []).slice(0, 6).join(", ") + ((p.authors || []).length > 6 ? ", …" : "");
    item.appendChild(el("div", "meta", p.day + " · " + (p.categories || []).join(", ") + " · " + authors));
    if (snippet) { item.appendChild(el("p", "snippet", snippet)); }
    return item;
  }

  /* -- a day page's filters ----------------------------------------------------------------- */

  function setUpDayFilters(form) {
    var papers = $all("[data-paper]");
    var category = $("[data-filter-category]", form);
    var keyword = $("[data-filter-keyword]", form);
    var count = $("[data-filter-count]", form);
    function apply() {
      var wanted = category.value;
      var words = keyword.value.toLowerCase().split(/\s+/).filter(Boolean);
      var shown = 0;
      papers.forEach(function (article) {
        var record = article.starRecord;
        var text = article.filterText;
        var ok = (!wanted || record.categories.indexOf(wanted) >= 0) &&
          words.every(function (w) { return text.indexOf(w) >= 0; });
        article.hidden = !ok;
        if (ok) { shown++; }
      });
      count.textContent = shown + " of " + papers.length + " shown";
    }
    papers.forEach(function (article) {
      // What a keyword matches: the paper's text, not the page's buttons.
      article.filterText = $all(".paper-title, p, .abstract, .analysis, .findings", article)
        .map(function (node) { return node.textContent; }).join(" ").toLowerCase();
    });
    form.addEventListener("submit", function (event) { event.preventDefault(); apply(); });
    category.addEventListener("change", apply);
    keyword.addEventListener("input", apply);
    form.hidden = false;
    apply();
  }

  /* -- search over every digest (the index: search/YYYY-MM.js, loaded by search.html) -------- */

  function loadIndex() {
    // Each month's search script (search/YYYY-MM.js) adds its days to this global.
    var days = window.ARXIV_DIGEST_DAYS;
    var fields = window.ARXIV_DIGEST_FIELDS;
    if (!Array.isArray(days) || !Array.isArray(fields)) { return null; }
    var f = {};
    fields.forEach(function (name, i) { f[name] = i; });
    var papers = [];
    days.forEach(function (d) {
      d.papers.forEach(function (row) {
        var p = {
          id: row[f.id], day: d.day, title: row[f.title], authors: row[f.authors],
          categories: row[f.categories], primary: row[f.primary], published: row[f.published],
          abstract: row[f.abstract], analysis: row[f.analysis], gist: row[f.gist]
        };
        p.haystack = [
          p.title.toLowerCase(), p.authors.join(", ").toLowerCase(),
          p.abstract.toLowerCase(), p.analysis.toLowerCase()
        ];
        papers.push(p);
      });
    });
    return papers;
  }

  var WEIGHTS = [4, 3, 2, 1];  // title, authors, abstract, analysis

  function score(p, words) {
    var total = 0;
    for (var i = 0; i < words.length; i++) {
      var hit = 0;
      for (var j = 0; j < p.haystack.length; j++) {
        if (p.haystack[j].indexOf(words[i]) >= 0) { hit += WEIGHTS[j]; }
      }
      if (!hit) { return 0; }
      total += hit;
    }
    return total || 1;
  }

  function setUpSearch(form) {
    var status = $("[data-search-status]");
    var results = $("[data-search-results]");
    var query = $("[data-search-query]", form);
    var category = $("[data-search-category]", form);
    var keyword = $("[data-search-keyword]", form);
    var papers = loadIndex();
    if (!papers) {
      status.textContent = "No search index loaded: publish a digest first.";
      return;
    }
    var counts = {};
    papers.forEach(function (p) {
      p.categories.forEach(function (c) { counts[c] = (counts[c] || 0) + 1; });
    });
    Object.keys(counts).sort(function (a, b) { return counts[b] - counts[a] || (a < b ? -1 : 1); })
      .forEach(function (c) {
        var option = el("option", null, c + " (" + counts[c] + ")");
        option.value = c;
        category.appendChild(option);
      });
    var params = new URLSearchParams(window.location.search);
    query.value = params.get("q") || "";
    keyword.value = params.get("keyword") || "";
    if (params.get("category") && counts[params.get("category")]) { category.value = params.get("category"); }

    var LIMIT = 100;
    function run() {
      var words = query.value.toLowerCase().split(/\s+/).filter(Boolean);
      var must = keyword.value.toLowerCase().trim();
      var wanted = category.value;
      results.textContent = "";
      if (!words.length && !must && !wanted) {
        status.textContent = papers.length + " papers in the index: type to search.";
        return;
      }
      var found = [];
      papers.forEach(function (p) {
        if (wanted && p.categories.indexOf(wanted) < 0) { return; }
        if (must && !p.haystack.some(function (h) { return h.indexOf(must) >= 0; })) { return; }
        var s = words.length ? score(p, words) : 1;
        if (s) { found.push({ paper: p, score: s }); }
      });
      found.sort(function (a, b) {
        return b.score - a.score || (a.paper.day < b.paper.day ? 1 : a.paper.day > b.paper.day ? -1 : 0);
      });
      found.slice(0, LIMIT).forEach(function (hit) {
        results.appendChild(resultItem(hit.paper, hit.paper.gist));
      });
      status.textContent = found.length + " result" + (found.length === 1 ? "" : "s") +
        (found.length > LIMIT ? " (the best " + LIMIT + " shown)" : "");
      refreshStars();
    }
    form.addEventListener("submit", function (event) { event.preventDefault(); run(); });
    query.addEventListener("input", run);
    keyword.addEventListener("input", run);
    category.addEventListener("change", run);
    run();
  }

  /* -- start ------------------------------------------------------------------------------ */

  function start() {
    $all("[data-paper]").forEach(function (article) {
      var record = recordFromArticle(article);
      article.starRecord = record;
      var button = $("[data-star]", article);
      if (button) { button.starRecord = record; }
    });
    var filters = $("[data-filters]");
    if (filters) { setUpDayFilters(filters); }
    var search = $("[data-search-form]");
    if (search) { setUpSearch(search); }
    if ($("[data-reading-list]")) { renderReadingList(); }
    refreshStars();
    // Stars made in another tab show here too.
    window.addEventListener("storage", function (event) {
      if (event.key === STORE) {
        refreshStars();
        if ($("[data-reading-list]")) { renderReadingList(); }
      }
    });
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
}());
