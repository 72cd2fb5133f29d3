// The console in a real browser: Debian's chromium, headless, driven by puppeteer-core, runs the
// seed's scenario through the page at ORDERS_BASE_URL, as a person would, and reads the DOM.
// `make test` runs it (node --test); the screenshot goes to ORDERS_SCREENSHOT.
"use strict";

const { test, before, after } = require("node:test");
const assert = require("node:assert/strict");
const puppeteer = require("puppeteer-core");

const base = process.env.ORDERS_BASE_URL;
const PATIENCE_MS = 15000;
let browser;
let page;
const problems = [];

before(async () => {
  browser = await puppeteer.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    headless: true,
    // As root (CI) chromium refuses its sandbox; the page is ours and local.
    args: ["--no-sandbox", "--disable-gpu"],
  });
  page = await browser.newPage();
  await page.setViewport({ width: 1100, height: 800 });
  // Script errors and Content-Security-Policy violations fail the test; chromium also logs every
  // 4xx answer as an error, which here are the refusals the tests ask for.
  page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
  page.on("console", (message) => {
    const refusal = message.text().startsWith("Failed to load resource: the server responded with a status of 4");
    if (message.type() === "error" && !refusal) problems.push(`console: ${message.text()}`);
  });
});

after(async () => {
  await browser?.close();
});

const text = (selector) => page.$eval(selector, (element) => element.textContent.trim());

async function fill(selector, value) {
  await page.$eval(selector, (input) => { input.value = ""; });
  await page.type(selector, String(value));
}

async function submit(selector, value, button) {
  if (value !== undefined) await fill(selector, value);
  await page.click(button);
}

const rowStates = () => page.$$eval("#orders tbody tr", (rows) => rows.map((row) => ({
  id: row.dataset.orderId,
  sum: row.cells[1].textContent,
  state: row.cells[2].textContent,
  reason: row.cells[3].textContent,
  balance: row.cells[4].textContent,
})));

async function until(what, condition) {
  const deadline = Date.now() + PATIENCE_MS;
  for (;;) {
    const value = await condition();
    if (value) return value;
    assert.ok(Date.now() < deadline, `gave up waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test("the page is served with a policy that allows only itself", async () => {
  const response = await page.goto(`${base}/`, { waitUntil: "networkidle0" });
  assert.equal(response.status(), 200);
  assert.match(response.headers()["content-type"], /^text\/html/);
  const policy = response.headers()["content-security-policy"];
  assert.match(policy, /default-src 'none'/);
  assert.match(policy, /connect-src 'self'/);
  assert.equal(await page.title(), "orders-lattice console");
});

test("a new user is created with a key, deposits, and sees the balance", async () => {
  const user = `Browser-${Date.now()}`;
  await submit("#user", user, "#create");
  await until("the user to be shown", async () => (await text("#who")).includes(user));
  assert.match(await page.$eval("#api-key", (input) => input.value), /^olk_/);
  assert.equal(await text("#balance"), "0");
  await submit("#deposit-sum", 100, "#deposit");
  await until("the balance of 100", async () => (await text("#balance")) === "100");
});

test("an affordable order goes from pending to paid and an unaffordable one is refused", async () => {
  await fill("#order-count", 1);
  await submit("#order-sum", 10, "#place");
  const [paid] = await until("the first order's row", async () => (await rowStates()).length === 1 && rowStates());
  assert.match(paid.state, /^(pending|paid)$/);
  await until("the first order to be paid", async () => (await rowStates())[0].state === "paid");
  assert.deepEqual((await rowStates())[0], { ...paid, state: "paid", reason: "paid", balance: "90" });

  await submit("#order-sum", 1000, "#place");
  const refused = await until("the second order to be refused", async () => {
    const [newest] = await rowStates();
    return newest.sum === "1000" && newest.state === "refused" && newest;
  });
  assert.deepEqual([refused.reason, refused.balance], ["insufficient_funds", "90"]);
  await until("the balance of 90", async () => (await text("#balance")) === "90");
});

test("a burst of orders is placed at once and each one is settled once", async () => {
  await fill("#order-count", 5);
  await submit("#order-sum", 1, "#place");
  await until("five more orders, all paid", async () => {
    const rows = await rowStates();
    return rows.length === 7 && rows.slice(0, 5).every((row) => row.state === "paid");
  });
  const ids = new Set((await rowStates()).map((row) => row.id));
  assert.equal(ids.size, 7, "seven distinct orders");
  await until("the balance of 85", async () => (await text("#balance")) === "85");
  await until("seven notifications", async () => (await page.$$("#notifications li")).length === 7);
  assert.equal((await page.$$("#notifications li.refused")).length, 1);
});

test("the statement shows every deposit and payment, newest first, and no refused order", async () => {
  const movements = () => page.$$eval("#statement tbody tr", (rows) => rows.map((row) =>
    [row.cells[0].textContent, row.cells[1].textContent, row.cells[2].textContent, row.cells[4].textContent]));
  await until("seven movements", async () => (await movements()).length === 7);
  assert.deepEqual(await movements(), [
    ["7", "payment", "−1", "85"],
    ["6", "payment", "−1", "86"],
    ["5", "payment", "−1", "87"],
    ["4", "payment", "−1", "88"],
    ["3", "payment", "−1", "89"],
    ["2", "payment", "−10", "90"],
    ["1", "deposit", "+100", "100"],
  ]);
  assert.deepEqual([await text("#statement-opening"), await text("#statement-closing")], ["0", "85"]);
  assert.ok(await page.$eval("#statement-older", (button) => button.disabled), "one page holds them all");
});

test("the API's refusals are shown in its own words and change nothing", async () => {
  await submit("#deposit-sum", -5, "#deposit");
  await until("the invalid sum to be explained", async () => (await text("#message")).startsWith("422 invalid_sum"));
  await submit("#deposit-sum", "ten", "#deposit");
  await until("the wrong type to be explained", async () => (await text("#message")).startsWith("400 wrong_type"));
  await submit("#user", " ", "#create");
  await until("the empty name to be explained", async () => (await text("#message")).startsWith("422 invalid_user"));
  assert.equal(await text("#balance"), "85");
});

test("a reload keeps the user, the balance, the orders and the notifications", async () => {
  const who = await text("#who");
  const before = await rowStates();
  await page.reload({ waitUntil: "networkidle0" });
  assert.equal(await text("#who"), who);
  await until("the balance after the reload", async () => (await text("#balance")) === "85");
  await until("the notifications after the reload", async () => (await page.$$("#notifications li")).length === 7);
  const after = await until("the orders after the reload", async () => {
    const rows = await rowStates();
    return rows.length === 7 && rows;
  });
  const byId = (rows) => Object.fromEntries(rows.map((row) => [row.id, [row.sum, row.state, row.reason, row.balance]]));
  assert.deepEqual(byId(after), byId(before));
});

test("a paid order is refunded with one click, once, and stays refunded after a reload", async () => {
  const [order] = (await rowStates()).filter((row) => row.sum === "10");
  await page.click(`#orders tbody tr[data-order-id="${order.id}"] button.refund`);
  await until("the order to be refunded", async () =>
    (await rowStates()).find((row) => row.id === order.id).state === "refunded");
  await until("the balance of 95", async () => (await text("#balance")) === "95");
  assert.equal(await page.$(`#orders tbody tr[data-order-id="${order.id}"] button.refund`), null, "nothing is left to refund");
  const newest = await page.$eval("#statement tbody tr", (row) => [...row.cells].slice(0, 5).map((cell) => cell.textContent));
  assert.deepEqual(newest, ["8", "refund", "+10", order.id, "95"]);
  await until("the refund's notification", async () => (await page.$$("#notifications li.refunded")).length === 1);
  await page.reload({ waitUntil: "networkidle0" });
  await until("the refunded order after the reload", async () =>
    (await rowStates()).find((row) => row.id === order.id)?.state === "refunded");
  assert.equal(await text("#balance"), "95");
});

test("the admin sees how many dead letters there are, and a user's key is refused there", async () => {
  await submit("#admin-token", process.env.ORDERS_ADMIN_TOKEN, "#admin-form button");
  const expected = await page.evaluate(async (token) => {
    const response = await fetch("/DeadLetters", { headers: { Authorization: `Bearer ${token}` } });
    return (await response.json()).count;
  }, process.env.ORDERS_ADMIN_TOKEN);
  await until("the dead letters count", async () => (await text("#dead-letters")) === String(expected));
  await page.screenshot({ path: process.env.ORDERS_SCREENSHOT ?? "console.png", fullPage: true });
  await submit("#admin-token", await page.$eval("#api-key", (input) => input.value), "#admin-form button");
  await until("the key to be refused", async () => (await text("#message")).startsWith("403 forbidden"));
});

test("nothing went wrong in the page", () => {
  assert.deepEqual(problems, []);
});
