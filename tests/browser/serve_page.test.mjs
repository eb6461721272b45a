// End-to-end tests of `convlearn serve` in a real headless Chromium (Debian's), driven by
// playwright-core. Started by .ci/run; by hand: `node serve_page.test.mjs` after a release build.
//   CONVLEARN_BIN  the binary (default ../../target/release/convlearn)
//   CHROMIUM       the browser (default /usr/bin/chromium)
//   SCREENSHOTS    where the screenshot goes (default ../../target/screenshots)
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "../..");
const bin = process.env.CONVLEARN_BIN || join(root, "target/release/convlearn");
const shots = process.env.SCREENSHOTS || join(root, "target/screenshots");

let server, browser, page, base;

function startServer() {
  return new Promise((ok, fail) => {
    server = spawn(bin, ["serve", "--port", "0"], { stdio: ["ignore", "pipe", "inherit"] });
    server.on("error", fail);
    server.on("exit", (code) => fail(new Error(`convlearn serve exited with ${code}`)));
    let out = "";
    server.stdout.on("data", (d) => {
      out += d;
      const m = out.match(/serving convlearn on (http:\/\/[^\s]+)/);
      if (m) ok(m[1]);
    });
  });
}

before(async () => {
  base = await startServer();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 1600 } });
  await page.goto(base);
  await page.waitForFunction(() => document.getElementById("response-img").src.startsWith("data:image/png"));
});

after(async () => {
  if (page) {
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, "serve.png"), fullPage: true });
    console.log(`screenshot: ${join(shots, "serve.png")}`);
  }
  await browser?.close();
  server?.kill();
});

const responseSrc = () => page.$eval("#response-img", (i) => i.src);
const changed = (before) => page.waitForFunction((b) => document.getElementById("response-img").src !== b, before);

test("choosing a preset fills the kernel and changes the response", async () => {
  const before = await responseSrc();
  await page.selectOption("#preset-select", "top-edge");
  await changed(before);
  const cells = await page.$$eval("#kernel-grid input", (c) => c.map((i) => parseFloat(i.value)));
  assert.deepEqual(cells, [1, 1, 1, 0, 0, 0, -1, -1, -1]);
});

test("editing a kernel cell recomputes the response", async () => {
  const before = await responseSrc();
  await page.fill("#cell-1-1", "5");
  await changed(before);
  assert.equal(await page.$eval("#preset-select", (s) => s.value), "", "the preset shows (custom)");
});

test("hovering a response pixel shows its arithmetic", async () => {
  const box = await page.$eval("#response-img", (i) => { const r = i.getBoundingClientRect(); return { w: r.width, h: r.height }; });
  await page.hover("#response-img", { position: { x: box.w * 0.5, y: box.h * 0.25 } });
  await page.waitForFunction(() => document.getElementById("arithmetic").textContent.includes("sum of products"));
  const text = await page.textContent("#arithmetic");
  assert.match(text, /output pixel x=\d+, y=\d+/);
  assert.match(text, /× kernel/);
  // The kernel as edited: centre cell 5.
  const kernel = await page.$$eval("#arithmetic table:nth-of-type(2) td", (t) => t.map((c) => parseFloat(c.textContent)));
  assert.deepEqual(kernel, [1, 1, 1, 0, 5, 0, -1, -1, -1]);
});

test("the arithmetic follows the arrow keys", async () => {
  const text = await page.textContent("#arithmetic");
  const [, x, y] = text.match(/output pixel x=(\d+), y=(\d+)/).map(Number);
  await page.focus("#response-img");
  await page.keyboard.press("ArrowRight");
  await page.waitForFunction((want) => document.getElementById("arithmetic").textContent.includes(want), `output pixel x=${x + 1}, y=${y}`);
});

test("a file that is not a picture is refused with a message", async () => {
  await page.setInputFiles("#upload-file", { name: "notes.txt", mimeType: "text/plain", buffer: Buffer.from("not a picture") });
  await page.click("#upload-button");
  await page.waitForSelector("#upload-error:not([hidden])");
  assert.match(await page.textContent("#upload-error"), /not an image/);
});

test("a picture upload becomes the playground's input", async () => {
  // An 8×8 checkered PNG, made here so the test needs no file.
  const png = Buffer.from("iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAHElEQVR4nGP4DwYMYIDMZsAqiiKNRQUpolS1AwBdc1+hIVYMawAAAABJRU5ErkJggg==", "base64");
  const before = await responseSrc();
  await page.setInputFiles("#upload-file", { name: "tiny.png", mimeType: "image/png", buffer: png });
  await page.click("#upload-button");
  await changed(before);
  assert.equal(await page.isHidden("#upload-error"), true);
  assert.match(await page.$eval("#image-select", (s) => s.selectedOptions[0].textContent), /uploaded: tiny\.png/);
});

test("the explorer shows every layer and explains a clicked activation", async () => {
  await page.selectOption("#explore-select", { index: 0 });
  await page.waitForFunction(() => document.querySelectorAll("#stages .stage").length >= 4, null, { timeout: 60000 });
  const titles = await page.$$eval("#stages h3", (h) => h.map((e) => e.textContent));
  assert.ok(titles.some((t) => t.startsWith("conv1")), titles.join(" | "));
  assert.ok((await page.$$("#outputs .bar")).length >= 2);
  await page.click("#stages .stage:nth-child(2) .tiles img", { position: { x: 30, y: 30 } });
  await page.waitForFunction(() => document.getElementById("explanation").textContent.includes("the network computed"));
  assert.match(await page.textContent("#explanation"), /conv layer 1, kernel 0/);
});

test("clicking an output bar shows that class's Grad-CAM", async () => {
  await page.waitForSelector("#heatmap:not([hidden])", { timeout: 60000 });
  const bars = await page.$$eval("#outputs .bar", (b) => b.map((e) => e.dataset.class));
  const shown = (await page.textContent("#heatmap-caption")).split(":")[0];
  const other = bars.find((c) => c !== shown);
  await page.click(`#outputs .bar[data-class="${other}"]`);
  await page.waitForFunction((c) => document.getElementById("heatmap-caption").textContent.startsWith(`${c}:`), other);
  assert.match(await page.textContent("#heatmap-caption"), /Grad-CAM on conv2/);
  assert.equal(await page.$eval(`#outputs .bar[data-class="${other}"]`, (b) => b.classList.contains("chosen")), true);
  assert.ok((await page.$eval("#heatmap-img", (i) => i.src)).startsWith("data:image/png"));
});

test("the spreadsheet button downloads a workbook", async () => {
  await page.waitForSelector("#spreadsheet-link:not([hidden])");
  const [download] = await Promise.all([page.waitForEvent("download"), page.click("#spreadsheet-link")]);
  assert.equal(download.suggestedFilename(), "convlearn-spreadsheet.xlsx");
  const path = await download.path();
  const { readFileSync } = await import("node:fs");
  const bytes = readFileSync(path);
  assert.equal(bytes.subarray(0, 2).toString(), "PK", "an .xlsx is a zip");
});

test("the training view shows the loss and the kernels step by step, then the explorer uses the result", async () => {
  await page.fill("#train-epochs", "2");
  await page.click("#train-button");
  await page.waitForFunction(() => document.getElementById("train-status").textContent.startsWith("done: 188 steps"), null, { timeout: 120000 });
  const kernels = await page.$$eval("#train-kernels table", (t) => t.length);
  assert.equal(kernels, 2, "two first-layer kernels");
  const points = await page.$eval("#loss-chart polyline", (p) => p.getAttribute("points").split(" ").length);
  assert.equal(points, 188);
  assert.match(await page.textContent("#train-epochs-list"), /epoch 2: .*valid accuracy/);
  // Replaying step 1 shows different kernels from the last step's.
  const last = await page.textContent("#train-kernels");
  await page.$eval("#step-slider", (s) => { s.value = "0"; s.dispatchEvent(new Event("input")); });
  assert.match(await page.textContent("#step-label"), /^step 1, epoch 1/);
  assert.notEqual(await page.textContent("#train-kernels"), last);
  await page.waitForFunction(() => { const t = document.getElementById("model-status").textContent; return t.startsWith("Model:") && t.includes("2 epochs"); }, null, { timeout: 60000 });
  await page.waitForSelector("#heatmap:not([hidden])");
});
