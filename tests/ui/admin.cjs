// Drives the admin web page in headless Chromium (Debian's) with
// playwright-core, for tests/it/ui.rs:
//
//   node tests/ui/admin.cjs PLAYWRIGHT_DIR ADMIN_URL TOKEN SCREENSHOT MODULE...
//
// Enters the token, checks that the tree lists every module's host, clicks
// reload on the first module and waits for its generation to rise, waits
// for the request metrics to move (the test sends traffic meanwhile),
// disables and enables it, and checks that the token is not asked for again
// after a page reload. Exits non-zero with the reason on the first failure.
"use strict";

const path = require("path");

const [dir, url, token, screenshot, ...modules] = process.argv.slice(2);
const { chromium } = require(path.join(dir, "node_modules", "playwright-core"));
const WAIT = { timeout: 15000 };

function fail(message) {
  console.error(`admin page: ${message}`);
  process.exit(1);
}

async function step(what, action) {
  try {
    return await action();
  } catch (e) {
    fail(`${what}: ${e.message.split("\n")[0]}`);
  }
}

(async () => {
  const browser = await chromium.launch({
    executablePath: "/usr/bin/chromium",
    // As root, and on a machine with no network but loopback.
    args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-quic", "--no-first-run", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  page.on("pageerror", (e) => fail(`script error on the page: ${e.message}`));
  const target = modules[0];
  const row = `#modules tr[data-module="${target}"]`;
  const number = (selector) => page.$eval(selector, (n) => Number(n.textContent));

  await step("load the page", () => page.goto(url));
  await step("the token form shows", () => page.waitForSelector("#login", { ...WAIT, state: "visible" }));
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");

  for (const m of modules) {
    await step(`the tree lists the host of ${m}`,
      () => page.waitForSelector(`#tree li[data-actor^="plugin.${m}"][data-module="${m}"]`, WAIT));
    await step(`the modules table lists ${m}`, () => page.waitForSelector(`#modules tr[data-module="${m}"]`, WAIT));
  }
  await step("the routes show", () => page.waitForSelector("#routes code", WAIT));
  // Nothing was edited: loading the modules must not have looked like a
  // change to the watched files.
  const config = await page.textContent("#config-status");
  if (!config.startsWith("config generation 1 ")) fail(`unexpected config status: ${config}`);

  const before = await number(`${row} td.generation`);
  const total = await number("#total");
  await page.click(`${row} button[data-action="reload"]`);
  await step(`${target}'s generation rises after reload`, () => page.waitForFunction(
    ([sel, b]) => Number(document.querySelector(sel)?.textContent) > b,
    [`${row} td.generation`, before], WAIT));
  await step("the tree shows the new generation", () => page.waitForFunction(
    ([m, b]) => document.querySelector(`#tree li[data-module="${m}"]`)?.textContent.includes(`generation ${b + 1}`),
    [target, before], WAIT));
  await step("the request count moves", () => page.waitForFunction(
    (t) => Number(document.querySelector("#total").textContent) > t, total, WAIT));
  await step("requests per second show", () => page.waitForFunction(
    () => Number(document.querySelector("#rps").textContent) > 0, null, WAIT));
  await step("latency shows", () => page.waitForFunction(
    () => /s$/.test(document.querySelector("#latency").textContent), null, WAIT));

  await page.click(`${row} button[data-action="disable"]`);
  await step("disable shows", () => page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent === "disabled", `${row} td.status`, WAIT));
  await page.click(`${row} button[data-action="enable"]`);
  await step("enable shows", () => page.waitForFunction(
    (sel) => document.querySelector(sel)?.textContent === "ready", `${row} td.status`, WAIT));

  await page.reload();
  await step("after a page reload the tree shows without the token asked again",
    () => page.waitForSelector(`#tree li[data-module="${target}"]`, WAIT));
  if (await page.isVisible("#login")) fail("the token was asked for again");

  // With live numbers in it, for the human who looks at it.
  await step("the numbers come back", () => page.waitForFunction(
    () => Number(document.querySelector("#rps").textContent) > 0, null, WAIT));
  await page.screenshot({ path: screenshot, fullPage: true });
  await browser.close();
  console.log("admin page: ok");
})().catch((e) => fail(e.message));
