// hybridnet web view: applies the server's live document (server-sent events from /events)
// to the page. The server formats every text; this script copies it into the elements that
// carry the same data-live key, sets data-state on badges and tunnels, rebuilds live tables,
// draws the throughput graph from successive byte counters, and re-fetches the topology
// picture when its structure changes. No reload.
"use strict";
(function () {
  const history = new Map(); // connection key -> [{t, inBytes, outBytes}]
  const WINDOW_MS = 60000;

  function setText(key, text) {
    document.querySelectorAll('[data-live="' + CSS.escape(key) + '"]').forEach(function (el) {
      if (el.textContent !== text) el.textContent = text;
    });
  }

  function setRows(key, rows) {
    document.querySelectorAll('[data-live-rows="' + CSS.escape(key) + '"]').forEach(function (tbody) {
      const frag = document.createDocumentFragment();
      rows.forEach(function (cells) {
        const tr = document.createElement("tr");
        cells.forEach(function (c) {
          const td = document.createElement("td");
          td.textContent = c;
          tr.appendChild(td);
        });
        frag.appendChild(tr);
      });
      tbody.replaceChildren(frag);
    });
  }

  function rate(bps) {
    const units = [["Gbit/s", 1e9], ["Mbit/s", 1e6], ["kbit/s", 1e3]];
    for (const [u, f] of units) if (bps >= f) return (bps / f).toFixed(2) + " " + u;
    return bps.toFixed(0) + " bit/s";
  }

  function graph(key, at, counters) {
    const fig = document.querySelector('[data-graph="' + CSS.escape(key) + '"]');
    if (!fig || !counters) return;
    const parts = counters.split(" ").map(Number);
    if (parts.length !== 2) return;
    const h = history.get(key) || [];
    h.push({ t: at, i: parts[0], o: parts[1] });
    while (h.length > 2 && at - h[0].t > WINDOW_MS) h.shift();
    history.set(key, h);
    const pts = [];
    for (let n = 1; n < h.length; n++) {
      const dt = (h[n].t - h[n - 1].t) / 1000;
      if (dt <= 0) continue;
      // a restarted gateway starts counting from zero: no negative rates
      pts.push({ t: h[n].t, i: Math.max(0, h[n].i - h[n - 1].i) * 8 / dt, o: Math.max(0, h[n].o - h[n - 1].o) * 8 / dt });
    }
    if (!pts.length) return;
    const max = Math.max(1000, ...pts.map(p => Math.max(p.i, p.o)));
    const line = sel => pts.map(p => (600 - (at - p.t) / WINDOW_MS * 600).toFixed(1) + "," + (178 - p[sel] / max * 170).toFixed(1)).join(" ");
    fig.querySelector('[data-series="in"]').setAttribute("points", line("i"));
    fig.querySelector('[data-series="out"]').setAttribute("points", line("o"));
    const last = pts[pts.length - 1];
    setText("conn:" + key + ":rateIn", rate(last.i));
    setText("conn:" + key + ":rateOut", rate(last.o));
    setText("conn:" + key + ":rateText", "Now " + rate(last.i) + " in and " + rate(last.o) + " out; peak of the last minute " + rate(max) + ".");
    const scale = fig.querySelector("[data-graph-scale]");
    if (scale) scale.textContent = "0 to " + rate(max);
  }

  let fingerprint = document.body.dataset.fingerprint;
  function refreshTopology() {
    const box = document.getElementById("topology");
    if (!box) return;
    fetch("/topology.svg", { cache: "no-store" }).then(r => r.text()).then(function (svg) {
      box.innerHTML = svg;
    }).catch(function () {});
  }

  function apply(doc) {
    if (doc.fingerprint && doc.fingerprint !== fingerprint) {
      fingerprint = doc.fingerprint;
      document.body.dataset.fingerprint = fingerprint;
      refreshTopology();
    }
    for (const [k, v] of Object.entries(doc.values)) setText(k, v);
    for (const [k, s] of Object.entries(doc.states)) {
      document.querySelectorAll('[data-state-of="' + CSS.escape(k) + '"]').forEach(el => { el.dataset.state = s; });
    }
    for (const [id, s] of Object.entries(doc.tunnels)) {
      document.querySelectorAll('[data-tunnel="' + CSS.escape(id) + '"]').forEach(el => {
        el.dataset.state = s;
        const title = el.querySelector("title");
        const label = doc.values["tunnel:" + id + ":label"];
        if (title && label) title.textContent = label;
      });
    }
    for (const [k, running] of Object.entries(doc.gateways)) {
      document.querySelectorAll('[data-gateway="' + CSS.escape(k) + '"]').forEach(el => { el.dataset.running = String(running); });
    }
    for (const [k, rows] of Object.entries(doc.rows)) setRows(k, rows);
    document.querySelectorAll("[data-graph]").forEach(function (fig) {
      const key = fig.dataset.graph;
      graph(key, doc.at, doc.values["conn:" + key + ":counters"]);
    });
    setText("meta:connection", "live");
    setText("meta:updated", "updated " + new Date(doc.at).toLocaleTimeString());
    document.body.dataset.liveAt = String(doc.at);
  }

  const source = new EventSource("/events");
  source.addEventListener("state", function (e) { apply(JSON.parse(e.data)); });
  source.onerror = function () { setText("meta:connection", "live updates interrupted; retrying"); };
})();
