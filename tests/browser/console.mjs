// The console in a real browser: Debian's Chromium, driven by playwright-core.
// tests/tests/console.rs runs this with a buyer's token and a product ready; it
//   1. opens the console and waits for the stack (orders-api among the functions, the stream live);
//   2. places an order through the API, with its own correlation id, and asks the trace view for it;
//   3. waits, without reloading, for orders-api's invocation count and http_request_total to move
//      and for the order's trace to show orders-api, products-api, the publish and a consumer;
//   4. saves a screenshot under .devstack/ and prints what it saw as one JSON line.
// Any step that does not happen within its deadline fails the run (exit 1, with a screenshot).

import { chromium } from "playwright-core";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const consoleUrl = env("CONSOLE_URL");
const apiUrl = env("API_URL");
const token = env("BUYER_TOKEN");
const productId = env("PRODUCT_ID");
const correlationId = env("CORRELATION_ID");
const screenshot = env("SCREENSHOT");
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const WAIT = 30_000;

const browser = await chromium.launch({
  executablePath,
  headless: true,
  // As the machine's probe found: without these, Chromium reaches for Google's hosts at start.
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
const page = await browser.newPage({ viewport: { width: 1500, height: 1100 } });
let navigations = 0;
page.on("framenavigated", (frame) => { if (frame === page.mainFrame()) navigations += 1; });
const problems = [];
page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));

const invocations = (fn) => page.$eval(`#functions tr[data-function="${fn}"] .invocations`, (td) => Number(td.textContent));
const metric = (name) => page.$eval(`#metric-${name}`, (div) => Number(div.dataset.total));

try {
  await page.goto(consoleUrl);
  await page.waitForSelector("#status.live", { timeout: WAIT });
  await page.waitForSelector('#functions tr[data-function="orders-api"]', { timeout: WAIT });
  const functions = await page.$$eval("#functions tbody tr", (rows) => rows.length);
  const queues = await page.$$eval("#queues tbody tr", (rows) => rows.length);
  const before = { orders: await invocations("orders-api"), requests: await metric("http_request_total") };

  const placed = await fetch(`${apiUrl}/api/v1/orders`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json", "x-correlation-id": correlationId },
    body: JSON.stringify({ items: [{ product_id: productId, quantity: 1 }] }),
  });
  if (placed.status !== 201) throw new Error(`the order was answered ${placed.status}: ${await placed.text()}`);

  await page.fill("#trace-input", correlationId);
  await page.click("#trace-form button");

  await page.waitForFunction(
    (n) => Number(document.querySelector('#functions tr[data-function="orders-api"] .invocations').textContent) > n,
    before.orders, { timeout: WAIT });
  await page.waitForFunction(
    (n) => Number(document.querySelector("#metric-http_request_total").dataset.total) > n,
    before.requests, { timeout: WAIT });
  await page.waitForFunction(() => {
    const view = document.querySelector("#trace-view");
    const has = (selector) => view.querySelector(selector) !== null;
    return has('.span[data-service="api-gateway"]') && has('.span[data-service="orders-api"]')
      && has('.span[data-service="products-api"]') && has('.span[data-name="publish order.created"]')
      && has('.span[data-service="inventory-consumer"]');
  }, null, { timeout: WAIT });

  const after = { orders: await invocations("orders-api"), requests: await metric("http_request_total") };
  const spans = await page.$$eval("#trace-view .span", (els) => els.map((e) => `${e.dataset.service} · ${e.dataset.name}`));
  await page.screenshot({ path: screenshot, fullPage: true });
  if (navigations !== 1) throw new Error(`the page navigated ${navigations} times: it was reloaded`);
  if (problems.length) throw new Error(problems.join("; "));
  console.log(JSON.stringify({ ok: true, functions, queues, before, after, spans, screenshot }));
} catch (error) {
  await page.screenshot({ path: screenshot.replace(/\.png$/, "-failed.png"), fullPage: true }).catch(() => {});
  console.log(JSON.stringify({ ok: false, error: String(error), problems }));
  process.exitCode = 1;
} finally {
  await browser.close();
}
