// The dashboard page: plain JavaScript, no build step. It reads the API it is served by (same origin,
// session cookie from the login form when API_TOKENS is set) and draws its chart as SVG by hand.
"use strict";

const SETTINGS = JSON.parse(document.getElementById("page-settings").textContent);
const LOCALE = SETTINGS.locale;
const KPIS = ["revenue", "orders", "units", "average_order_value", "gross_margin_rate", "customers"];
const POLL_MS = 30000;
const CHART_DAYS = 90;

const fmt = {
  money: new Intl.NumberFormat(LOCALE, { style: "currency", currency: SETTINGS.currency }),
  moneyShort: new Intl.NumberFormat(LOCALE, { style: "currency", currency: SETTINGS.currency, notation: "compact", maximumFractionDigits: 1 }),
  integer: new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 0 }),
  decimal: new Intl.NumberFormat(LOCALE, { maximumFractionDigits: 1 }),
  percent: new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1 }),
  change: new Intl.NumberFormat(LOCALE, { style: "percent", maximumFractionDigits: 1, signDisplay: "exceptZero" }),
  day: new Intl.DateTimeFormat(LOCALE, { dateStyle: "full" }),
  shortDay: new Intl.DateTimeFormat(LOCALE, { day: "numeric", month: "short" }),
  instant: new Intl.DateTimeFormat(LOCALE, { dateStyle: "medium", timeStyle: "short" }),
};
const KPI_FORMAT = { revenue: "money", average_order_value: "money", gross_margin_rate: "percent" };

const state = { store: "", dashboard: null, etag: null, lastEventId: null, socket: null, retry: 0 };

function t(key, values = {}) {
  return (SETTINGS.texts[key] || key).replace(/\{(\w+)\}/g, (_, name) => values[name] ?? "");
}

function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") node.className = value;
    else if (value !== null && value !== undefined) node.setAttribute(name, value);
  }
  for (const child of children) node.append(child instanceof Node ? child : document.createTextNode(child ?? ""));
  return node;
}

function parseDay(text) {
  const [year, month, day] = text.split("-").map(Number);
  return new Date(year, month - 1, day);
}

function addDays(text, days) {
  const date = parseDay(text);
  date.setDate(date.getDate() + days);
  return `${date.getFullYear()}-${String(date.getMonth() + 1).padStart(2, "0")}-${String(date.getDate()).padStart(2, "0")}`;
}

class Unauthorized extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, {
    credentials: "same-origin",
    ...options,
    headers: { "X-Requested-With": "fetch", ...(options.headers || {}) },
  });
  if (response.status === 401) {
    showLogin();
    throw new Unauthorized();
  }
  return response;
}

function showError(message) {
  const node = document.getElementById("error");
  node.textContent = message ? t("page.error", { reason: message }) : "";
  node.hidden = !message;
}

// --- login ----------------------------------------------------------------------------------------

function showLogin() {
  document.getElementById("dashboard").hidden = true;
  document.getElementById("login").hidden = false;
}

async function login(event) {
  event.preventDefault();
  const form = event.target;
  const response = await fetch("/login", { method: "POST", body: new URLSearchParams(new FormData(form)), credentials: "same-origin" });
  const error = document.getElementById("login-error");
  if (!response.ok) {
    error.textContent = t("page.login.refused");
    error.hidden = false;
    return;
  }
  form.reset();
  error.hidden = true;
  form.hidden = true;
  start();
}

// --- the dashboard --------------------------------------------------------------------------------

function scopeQuery() {
  return state.store ? `scope=store&id=${encodeURIComponent(state.store)}` : "scope=all";
}

async function loadStores() {
  const response = await api("/analytics/stores");
  if (!response.ok) return;
  const select = document.getElementById("store");
  select.replaceChildren(el("option", { value: "" }, t("page.all_stores")));
  for (const store of await response.json()) {
    select.append(el("option", { value: store.store_id }, store.name ? `${store.name} (${store.store_id})` : store.store_id));
  }
  select.value = state.store;
}

async function loadDashboard(force = false) {
  const query = state.store ? `?store=${encodeURIComponent(state.store)}` : "";
  const response = await api(`/analytics/dashboard${query}`, { cache: force ? "reload" : "no-cache" });
  document.getElementById("dashboard").hidden = false;
  const empty = document.getElementById("empty");
  if (response.status === 404) {
    empty.textContent = t("page.no_data");
    empty.hidden = false;
    return;
  }
  if (!response.ok) throw new Error((await response.json()).detail);
  empty.hidden = true;
  const etag = response.headers.get("ETag");
  if (!force && etag && etag === state.etag) return;  // unchanged (the browser's cache answered a 304)
  state.etag = etag;
  state.dashboard = await response.json();
  renderDashboard(state.dashboard);
  await loadChart(state.dashboard.as_of);
}

function renderDashboard(dashboard) {
  document.getElementById("freshness").textContent =
    `${t("page.data_to", { day: fmt.day.format(parseDay(dashboard.as_of)) })} · ${t("page.refreshed", { when: fmt.instant.format(new Date(dashboard.refreshed_at)) })}`;
  const cards = KPIS.map((name) => el("article", { class: "kpi", "data-kpi": name },
    el("h3", {}, t(`page.kpi.${name}`)),
    figure(name, dashboard.headline_day[name], "day", "page.last_day", "page.vs_last_week_day"),
    figure(name, dashboard.headline[name], "week", "page.last_7_days", "page.vs_week_before")));
  document.getElementById("kpis").replaceChildren(...cards);

  const top = dashboard.top_products.map((product) => el("tr", { "data-product": product.product_id },
    el("td", {}, String(product.rank)),
    el("td", {}, product.name || product.product_id),
    el("td", { class: "num", "data-value": product.revenue }, fmt.money.format(product.revenue)),
    el("td", { class: "num" }, fmt.integer.format(product.units)),
    el("td", { class: "num" }, rankChange(product.rank_change))));
  fillTable("top", top, "page.top.none", 5);

  const stock = dashboard.stock_at_risk.map((item) => el("tr", { "data-product": item.product_id },
    el("td", {}, item.name || item.product_id),
    el("td", {}, item.store_id),
    el("td", { class: "num" }, fmt.integer.format(item.on_hand)),
    el("td", { class: "num" }, item.days_of_cover === null ? "–" : fmt.decimal.format(item.days_of_cover)),
    el("td", {}, el("span", { class: `badge ${item.status}` }, t(`page.stock.${item.status}`)))));
  fillTable("stock", stock, "page.stock.none", 5);
}

function figure(name, kpi, period, label, comparedTo) {
  const format = fmt[KPI_FORMAT[name] || "integer"];
  const value = kpi.value === null ? "–" : format.format(kpi.value);
  return el("div", { class: "figure", "data-period": period, "data-value": kpi.value ?? "" },
    el("div", { class: "period" }, t(label)),
    el("span", { class: period === "week" ? "value" : "value small" }, value),
    changeBadge(kpi.change, comparedTo));
}

function changeBadge(change, comparedTo) {
  if (change === null) return el("span", { class: "change flat", title: t(comparedTo) }, "–");
  const direction = change > 0 ? "up" : change < 0 ? "down" : "flat";
  const arrow = { up: "▲ ", down: "▼ ", flat: "" }[direction];
  return el("span", { class: `change ${direction}`, title: t(comparedTo) }, arrow + fmt.change.format(change));
}

function rankChange(change) {
  if (change === null) return t("page.top.new");
  return change > 0 ? `▲ ${change}` : change < 0 ? `▼ ${-change}` : "=";
}

function fillTable(id, rows, emptyKey, columns) {
  const body = document.querySelector(`#${id} tbody`);
  body.replaceChildren(...(rows.length ? rows : [el("tr", {}, el("td", { colspan: columns, class: "note" }, t(emptyKey)))]));
}

// --- the chart: 90 days of revenue and the 7-day forecast with its bands, as SVG -------------------

async function loadChart(asOf) {
  const from = addDays(asOf, 1 - CHART_DAYS);
  const [kpis, forecast] = await Promise.all([
    api(`/analytics/kpis?from=${from}&to=${asOf}&${scopeQuery()}&limit=400`),
    api(`/ml/forecast?${scopeQuery()}`),
  ]);
  const rows = kpis.ok ? (await kpis.json()).rows : [];
  const byDay = new Map(rows.map((row) => [row.day, row.revenue]));
  const actual = Array.from({ length: CHART_DAYS }, (_, i) => {
    const day = addDays(from, i);
    return { day, value: byDay.get(day) ?? 0 };
  });
  const predicted = forecast.ok ? (await forecast.json()).days : [];
  const note = document.getElementById("chart-note");
  note.textContent = t("page.chart.no_forecast");
  note.hidden = predicted.length > 0;
  document.getElementById("chart").replaceChildren(drawChart(actual, predicted));
}

function niceStep(rough) {
  // 1, 2 or 5 times a power of ten: axis labels a person reads at a glance.
  const power = 10 ** Math.floor(Math.log10(rough));
  return [1, 2, 5, 10].map((m) => m * power).find((candidate) => candidate >= rough);
}

function drawChart(actual, predicted) {
  const width = 960, height = 280, left = 64, right = 12, top = 10, bottom = 26;
  const days = actual.length + predicted.length;
  const highest = Math.max(1, ...actual.map((p) => p.value), ...predicted.map((p) => p.upper_95));
  const step = niceStep(highest / 4);
  const ceiling = step * Math.ceil(highest / step);
  const x = (i) => left + (i * (width - left - right)) / Math.max(1, days - 1);
  const y = (value) => top + (1 - value / ceiling) * (height - top - bottom);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("page.chart.title"));
  const add = (tag, attributes, text) => {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
    if (text !== undefined) node.textContent = text;
    svg.append(node);
    return node;
  };
  for (let value = 0; value <= ceiling + step / 2; value += step) {
    add("line", { class: "grid", x1: left, x2: width - right, y1: y(value), y2: y(value) });
    add("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end" }, fmt.moneyShort.format(value));
  }
  const all = [...actual.map((p) => p.day), ...predicted.map((p) => p.day)];
  all.forEach((day, i) => {
    if (day.endsWith("-01") || i === 0) add("text", { x: x(i), y: height - 8, "text-anchor": "middle" }, fmt.shortDay.format(parseDay(day)));
  });
  if (predicted.length) {
    const start = actual.length;
    const band = (upper, lower, cls) => {
      const upperPoints = predicted.map((p, i) => `${x(start + i)},${y(p[upper])}`);
      const lowerPoints = predicted.map((p, i) => `${x(start + i)},${y(p[lower])}`).reverse();
      add("polygon", { class: cls, points: [...upperPoints, ...lowerPoints].join(" ") });
    };
    band("upper_95", "lower_95", "band95");
    band("upper_80", "lower_80", "band80");
    const joined = [{ x: x(start - 1), y: y(actual[actual.length - 1].value) }, ...predicted.map((p, i) => ({ x: x(start + i), y: y(p.yhat) }))];
    add("polyline", { class: "forecast", points: joined.map((p) => `${p.x},${p.y}`).join(" ") });
  }
  add("polyline", { class: "actual", points: actual.map((p, i) => `${x(i)},${y(p.value)}`).join(" ") });
  add("line", { class: "axis", x1: left, x2: width - right, y1: y(0), y2: y(0) });
  const wrapper = el("div", {}, svg, el("div", { class: "legend" },
    el("span", {}, el("i", { class: "swatch-actual" }), t("page.chart.actual")),
    el("span", {}, el("i", { class: "swatch-forecast" }), t("page.chart.forecast")),
    el("span", {}, el("i", { class: "swatch-band80" }), t("page.chart.band_80")),
    el("span", {}, el("i", { class: "swatch-band95" }), t("page.chart.band_95"))));
  return wrapper;
}

// --- alerts: the open ones, and critical ones pushed over the WebSocket ----------------------------

async function loadAlerts() {
  const response = await api("/alerts?status=open");
  const list = document.getElementById("alerts");
  if (!response.ok) {
    list.replaceChildren(el("li", { class: "note" }, t("page.alerts.none")));
    return;
  }
  const alerts = (await response.json()).filter((alert) => !state.store || alert.store_id === state.store);
  list.replaceChildren(...(alerts.length ? alerts.map((alert) => alertItem(alert)) : [el("li", { class: "note", id: "no-alert" }, t("page.alerts.none"))]));
}

function alertItem(alert, fresh = false) {
  const ack = el("button", { type: "button" }, t("page.alerts.ack"));
  ack.addEventListener("click", () => acknowledge(alert.id, ack));
  return el("li", { "data-alert": alert.id, class: fresh ? "fresh" : "" },
    el("span", { class: `badge ${alert.severity}` }, t(`severity.${alert.severity}`)),
    el("span", { class: "message" }, alert.message),
    el("span", { class: "since" }, fmt.instant.format(new Date(alert.since))),
    alert.status === "acknowledged" ? el("span", { class: "note" }, t("page.alerts.acked", { by: alert.acknowledged_by })) : ack);
}

async function acknowledge(id, button) {
  button.disabled = true;
  const response = await api(`/alerts/${id}/ack`, { method: "POST" });
  if (!response.ok) {
    button.disabled = false;
    showError((await response.json()).detail);
    return;
  }
  const alert = await response.json();
  document.querySelector(`#alerts li[data-alert="${id}"]`)?.replaceWith(alertItem(alert));
}

function onNotification(notification) {
  state.lastEventId = notification.id;
  const alert = notification.alert;
  const list = document.getElementById("alerts");
  const existing = list.querySelector(`li[data-alert="${alert.id}"]`);
  if (notification.event === "resolved") {
    existing?.remove();
    return;
  }
  if (state.store && alert.store_id !== state.store) return;
  document.getElementById("no-alert")?.remove();
  const item = alertItem(alert, true);
  existing ? existing.replaceWith(item) : list.prepend(item);
  if (alert.severity === "critical") toast(alert);
}

function toast(alert) {
  const node = el("div", { class: "toast", "data-alert": alert.id }, el("strong", {}, t("page.alerts.new")), alert.message);
  document.getElementById("toasts").append(node);
  setTimeout(() => node.remove(), 15000);
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const after = state.lastEventId === null ? "" : `?after=${state.lastEventId}`;
  const socket = new WebSocket(`${scheme}://${location.host}/ws/notifications${after}`);
  const live = document.getElementById("live");
  socket.onopen = () => {
    state.retry = 0;
    live.textContent = t("page.live");
    live.className = "live on";
  };
  socket.onmessage = (message) => {
    const data = JSON.parse(message.data);
    if (data.type === "notification") onNotification(data);
  };
  socket.onclose = () => {
    live.textContent = t("page.reconnecting");
    live.className = "live off";
    const wait = Math.min(30000, 500 * 2 ** state.retry++);
    setTimeout(connect, wait);
  };
  state.socket = socket;
}

// --- start ----------------------------------------------------------------------------------------

async function refresh(force = false) {
  try {
    await loadDashboard(force);
    await loadAlerts();
    showError("");
  } catch (error) {
    if (!(error instanceof Unauthorized)) showError(error.message);
  }
}

async function start() {
  try {
    await loadStores();
  } catch (error) {
    if (error instanceof Unauthorized) return;
  }
  await refresh(true);
  if (!state.socket) connect();
  if (!state.timer) state.timer = setInterval(() => refresh(false), POLL_MS);
}

document.querySelectorAll("[data-text]").forEach((node) => { node.textContent = t(node.dataset.text); });
document.getElementById("login").addEventListener("submit", login);
document.getElementById("store").addEventListener("change", (event) => {
  state.store = event.target.value;
  state.etag = null;
  refresh(true);
});
start();
