// The console drives the public HTTP API of this lattice, same origin, exactly as any client would:
// nothing here is privileged. The user and API key live in this tab's sessionStorage only.
"use strict";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["paid", "refused", "partially_refunded", "refunded"]);
const POLL_MS = 400;
// Under the per-credential rate limit (100 requests/s): at most this many status asks per poll.
const STATUS_ASKS_PER_POLL = 20;

const session = {
  user: sessionStorage.getItem("orders.user"),
  key: sessionStorage.getItem("orders.key"),
  save(user, key) {
    this.user = user;
    this.key = key;
    sessionStorage.setItem("orders.user", user);
    sessionStorage.setItem("orders.key", key);
  },
};
// The admin token, for the dead letters only: in this page's memory, never stored.
let adminToken = "";
// The statement page shown: the `after` it was asked with, null for the newest entries.
const STATEMENT_PAGE = 20;
let statementAfter = null;
// order id -> { sum, state, reason, balance, row, refundKey }, in the order they were placed.
const orders = new Map();

async function api(method, path, body, extraHeaders = {}) {
  const headers = { ...extraHeaders };
  if (session.key) headers.Authorization = `Bearer ${session.key}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  return apiWith(method, path, headers, body);
}

async function apiWith(method, path, headers, body) {
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (error) {
    return { status: 0, body: { status: false, error: "network_error", message: `the lattice did not answer: ${error.message}` } };
  }
  let json;
  try {
    json = await response.json();
  } catch {
    json = { status: false, error: "not_json", message: `HTTP ${response.status} without a JSON body` };
  }
  return { status: response.status, body: json };
}

let messageTimer;
function say(text, isError = false) {
  const box = $("message");
  box.textContent = text;
  box.className = isError ? "shown error" : "shown";
  clearTimeout(messageTimer);
  messageTimer = setTimeout(() => { box.className = isError ? "error" : ""; }, isError ? 8000 : 3000);
}

// The API's own words: status, machine code and message.
function sayError(answer) {
  say(`${answer.status} ${answer.body.error}: ${answer.body.message}`, true);
}

// A sum as the user typed it: a JSON number when it is one, else the text itself, so that the API
// (not this page) decides and explains what is wrong with it.
function sumOf(input) {
  const text = input.value.trim();
  return /^-?\d+$/.test(text) ? Number(text) : text;
}

function showWho() {
  $("who").textContent = session.user ? `Signed in as ${session.user}` : "No user yet: create one, or use a key you have.";
  if (session.key) $("api-key").value = session.key;
}

async function refreshBalance() {
  if (!session.user) return;
  const answer = await api("GET", `/Balance?user=${encodeURIComponent(session.user)}`);
  if (answer.status === 200) $("balance").textContent = answer.body.balance;
}

async function refreshStatement() {
  if (!session.user) return;
  const after = statementAfter === null ? "" : `&after=${statementAfter}`;
  const answer = await api("GET", `/Statement?user=${encodeURIComponent(session.user)}&limit=${STATEMENT_PAGE}${after}`);
  if (answer.status !== 200) return;
  const page = answer.body;
  $("statement-opening").textContent = page.opening_balance;
  $("statement-closing").textContent = page.closing_balance;
  $("statement").tBodies[0].replaceChildren(...page.entries.map((entry) => {
    const row = document.createElement("tr");
    row.className = entry.kind;
    const amount = entry.kind === "payment" ? `−${entry.amount}` : `+${entry.amount}`;  // deposits and refunds add
    const cells = [entry.entry, entry.kind, amount, entry.order_id ?? "", entry.balance_after, new Date(entry.at_ms).toLocaleString()];
    row.replaceChildren(...cells.map((text) => {
      const cell = document.createElement("td");
      cell.textContent = text;
      return cell;
    }));
    return row;
  }));
  $("statement-older").disabled = page.next_after === null;
  $("statement-older").dataset.after = page.next_after ?? "";
  $("statement-newest").disabled = statementAfter === null;
}

// The balance and the statement, after money moved.
async function refreshMoney() {
  await Promise.all([refreshBalance(), refreshStatement()]);
}

// Every notification of the signed-in user, oldest first, page by page.
async function userNotifications() {
  const base = `/List?user=${encodeURIComponent(session.user)}&limit=1000`;
  const all = [];
  let path = base;
  for (;;) {
    const answer = await api("GET", path);
    if (answer.status !== 200) return null;
    all.push(...answer.body.notifications);
    if (answer.body.next_after === null) return all;
    path = `${base}&after=${answer.body.next_after}`;
  }
}

async function refreshNotifications() {
  if (!session.user) return;
  const notifications = await userNotifications();
  if (notifications === null) return;
  // Orders placed before a reload (or elsewhere) come back into the table from their notifications;
  // a refund's notification (after its order's) tells how much of the order came back.
  const refunded = new Map();
  for (const n of notifications) {
    if (n.refund_id) {
      refunded.set(n.order_id, (refunded.get(n.order_id) ?? 0) + n.sum);
      continue;
    }
    if (orders.has(n.order_id)) continue;
    orders.set(n.order_id, { sum: n.sum, state: n.paid ? "paid" : "refused", reason: n.reason, balance: n.balance });
    renderOrder(n.order_id);
  }
  for (const [id, sum] of refunded) {
    const order = orders.get(id);
    if (!order) continue;
    order.state = sum >= order.sum ? "refunded" : "partially_refunded";
    renderOrder(id);
  }
  const list = $("notifications");
  list.replaceChildren(...notifications.map((n) => {
    const item = document.createElement("li");
    item.className = n.refund_id ? "refunded" : n.paid ? "paid" : "refused";
    item.dataset.orderId = n.order_id;
    item.textContent = n.message;
    return item;
  }));
}

function renderOrder(id) {
  const order = orders.get(id);
  if (!order.row) {
    order.row = document.createElement("tr");
    order.row.dataset.orderId = id;
    order.row.innerHTML = "<td></td><td></td><td><span class=state></span></td><td></td><td></td><td></td>";
    $("orders").tBodies[0].prepend(order.row);
  }
  const cells = order.row.cells;
  cells[0].textContent = id;
  cells[1].textContent = order.sum;
  const state = cells[2].firstChild;
  state.textContent = order.state;
  state.className = `state ${order.state}`;
  cells[3].textContent = order.reason ?? "";
  cells[4].textContent = order.balance ?? "";
  // What is left of a paid order can be refunded.
  if (order.state === "paid" || order.state === "partially_refunded") {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "refund";
    button.textContent = "Refund";
    button.addEventListener("click", () => refundOrder(id));
    cells[5].replaceChildren(button);
  } else {
    cells[5].replaceChildren();
  }
}

async function refundOrder(id) {
  const order = orders.get(id);
  // One key per refund, kept until it is answered: the money comes back once.
  order.refundKey ??= crypto.randomUUID();
  const answer = await postRetried("/Refund", { order_id: id }, order.refundKey);
  if (answer.status !== 200) return sayError(answer);
  order.refundKey = undefined;
  order.state = answer.body.refunded >= answer.body.order_sum ? "refunded" : "partially_refunded";
  renderOrder(id);
  say(`Refunded ${answer.body.sum}. Balance ${answer.body.balance}.`);
  await refreshMoney();
  // notify records the refund's notification a moment later.
  setTimeout(refreshNotifications, 500);
}

// A POST under an Idempotency-Key, sent once more with the same key when the lattice did not
// answer (or answered 503): what it asks for happens at most once either way.
async function postRetried(path, body, idempotencyKey) {
  const key = { "Idempotency-Key": idempotencyKey };
  const answer = await api("POST", path, body, key);
  if (answer.status !== 0 && answer.status !== 503) return answer;
  return api("POST", path, body, key);
}

async function placeOne(sum) {
  // One key per order: the order is never placed twice.
  const answer = await postRetried("/Order", { user: session.user, sum }, crypto.randomUUID());
  if (answer.status !== 202) return answer;
  orders.set(answer.body.order_id, { sum: answer.body.sum, state: "pending" });
  renderOrder(answer.body.order_id);
  return answer;
}

async function refreshDeadLetters() {
  if (!adminToken) return;
  const answer = await apiWith("GET", "/DeadLetters", { Authorization: `Bearer ${adminToken}` });
  if (answer.status !== 200) {
    adminToken = "";
    return sayError(answer);
  }
  $("dead-letters").textContent = answer.body.count;
  $("dead-letters-unsettled").textContent = answer.body.unsettled ? `(${answer.body.unsettled} not settled)` : "";
}

let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const waiting = [...orders].filter(([, o]) => !FINAL.has(o.state)).slice(0, STATUS_ASKS_PER_POLL);
    const answers = await Promise.all(waiting.map(([id]) => api("GET", `/OrderStatus?order_id=${id}`)));
    let settled = false;
    answers.forEach((answer, i) => {
      // Not answered (the lattice busy, a 503): the order stays as shown and is asked again.
      if (answer.status !== 200) return;
      const [id, order] = waiting[i];
      Object.assign(order, { state: answer.body.state, reason: answer.body.reason, balance: answer.body.balance });
      settled ||= FINAL.has(order.state);
      renderOrder(id);
    });
    if (settled) await Promise.all([refreshMoney(), refreshNotifications()]);
  } finally {
    polling = false;
  }
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const answer = await apiWith("POST", "/CreateUser", { "Content-Type": "application/json" }, { user: $("user").value });
  if (answer.status !== 201) return sayError(answer);
  session.save(answer.body.user, answer.body.api_key);
  orders.clear();
  $("orders").tBodies[0].replaceChildren();
  $("key-details").open = true;
  showWho();
  $("balance").textContent = answer.body.balance;
  statementAfter = null;
  await Promise.all([refreshStatement(), refreshNotifications()]);
  say(`Created ${answer.body.user}. Keep the API key shown under "API key": it is not shown again.`);
});

$("key-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const key = $("api-key").value.trim();
  // The key names its user: olk_<base64url of the name>.<nonce>.<mac>.
  const encoded = key.startsWith("olk_") ? key.slice(4).split(".")[0] : "";
  let user;
  try {
    const bytes = Uint8Array.from(atob(encoded.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
    user = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return say("That is not an API key of this lattice (they start with olk_).", true);
  }
  session.save(user, key);
  showWho();
  const answer = await api("GET", `/Balance?user=${encodeURIComponent(user)}`);
  if (answer.status !== 200) return sayError(answer);
  $("balance").textContent = answer.body.balance;
  statementAfter = null;
  await Promise.all([refreshStatement(), refreshNotifications()]);
});

$("deposit-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!session.user) return say("Create a user first.", true);
  const answer = await api("POST", "/DepositCash", { user: session.user, sum: sumOf($("deposit-sum")) });
  if (answer.status !== 200) return sayError(answer);
  $("balance").textContent = answer.body.balance;
  await refreshStatement();
  say(`Deposited. Balance ${answer.body.balance}.`);
});

$("order-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!session.user) return say("Create a user first.", true);
  const count = Math.min(Math.max(Number($("order-count").value) || 1, 1), 100);
  const sum = sumOf($("order-sum"));
  $("place").disabled = true;
  try {
    const answers = await Promise.all(Array.from({ length: count }, () => placeOne(sum)));
    const refused = answers.filter((a) => a.status !== 202);
    if (refused.length) return sayError(refused[0]);
    say(count === 1 ? "Order accepted: pending until billing settles it." : `${count} orders accepted.`);
  } finally {
    $("place").disabled = false;
  }
});

$("admin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  adminToken = $("admin-token").value.trim();
  await refreshDeadLetters();
});

$("statement-older").addEventListener("click", async () => {
  statementAfter = Number($("statement-older").dataset.after);
  await refreshStatement();
});

$("statement-newest").addEventListener("click", async () => {
  statementAfter = null;
  await refreshStatement();
});

showWho();
refreshMoney();
refreshNotifications();
setInterval(poll, POLL_MS);
setInterval(refreshDeadLetters, 2000);
