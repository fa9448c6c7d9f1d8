// Kiln's page: fetches Fashion-MNIST from the server, trains on the page's WebGPU, charts the
// loss and accuracy, classifies what the user draws, saves the weights. With `?mode=test`
// it runs on its own and sends its figures and weights back to the server (the browser test).
import init, { Session, Settings, checkGolden } from "./pkg/kiln_web.js";

const CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"];
const FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];
const $ = (id) => document.getElementById(id);
const query = new URLSearchParams(location.search);

let session = null;
let files = null;
const history = [];

function fail(e) {
  const text = `error: ${e && e.message ? e.message : e}`;
  $("error").textContent = text;
  console.log(`KILN_TEST failed ${text}`);
}

async function fetchData() {
  if (files) return files;
  const urls = FILES.map((name) => `data/${name}`);
  const contents = await Promise.all(urls.map(async (url) => {
    const response = await fetch(url);
    if (!response.ok) throw new Error(`${url}: ${response.status} ${response.statusText}`);
    return new Uint8Array(await response.arrayBuffer());
  }));
  files = { urls, contents };
  return files;
}

function drawChart(steps) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const [w, h, pad] = [canvas.width, canvas.height, 34];
  ctx.clearRect(0, 0, w, h);
  ctx.font = "12px system-ui";
  ctx.strokeStyle = "#ccc";
  ctx.strokeRect(pad, 8, w - pad - 8, h - pad - 8);
  const maxLoss = Math.max(2.5, ...history.map((p) => p.loss));
  const x = (s) => pad + ((w - pad - 8) * s) / Math.max(steps, 1);
  const y = (v, top) => 8 + (h - pad - 8) * (1 - v / top);
  const line = (color, value, top) => {
    ctx.strokeStyle = color;
    ctx.beginPath();
    history.forEach((p, i) => (i ? ctx.lineTo : ctx.moveTo).call(ctx, x(p.step), y(value(p), top)));
    ctx.stroke();
  };
  line("#d9480f", (p) => p.loss, maxLoss);
  line("#1971c2", (p) => p.accuracy, 1);
  ctx.fillStyle = "#d9480f";
  ctx.fillText(`loss (0 to ${maxLoss.toFixed(1)})`, pad + 6, 22);
  ctx.fillStyle = "#1971c2";
  ctx.fillText("batch accuracy (0 to 1)", pad + 6, 38);
  ctx.fillStyle = "#444";
  ctx.fillText("0", pad - 4, h - pad + 16);
  ctx.fillText(`${steps} steps`, w - 70, h - pad + 16);
}

async function train(options) {
  $("train").disabled = true;
  $("save").disabled = true;
  $("test").textContent = "–";
  history.length = 0;
  const settings = new Settings();
  settings.model = options.model;
  settings.train_images = options.trainImages;
  settings.test_images = options.testImages;
  const batch = settings.batch;
  const data = await fetchData();
  session = await Session.create(settings, data.urls, data.contents); // takes `settings`
  $("adapter").textContent = `Adapter: ${session.adapter()}; ${session.parameters().toLocaleString()} parameters.`;
  const start = performance.now();
  let smoothed = null;
  for (let step = 1; step <= options.steps; step++) {
    const [loss, accuracy] = await session.step();
    smoothed = smoothed === null ? loss : 0.95 * smoothed + 0.05 * loss;
    history.push({ step, loss, accuracy });
    if (step % 10 === 0 || step === options.steps) {
      const rate = (step * batch) / ((performance.now() - start) / 1000);
      $("step").textContent = `${step} / ${options.steps}`;
      $("loss").textContent = smoothed.toFixed(4);
      $("accuracy").textContent = `${(100 * accuracy).toFixed(1)}%`;
      $("rate").textContent = rate.toFixed(0);
      drawChart(options.steps);
      await new Promise((resolve) => requestAnimationFrame(resolve));
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const [testLoss, testAccuracy] = await session.evaluate();
  $("test").textContent = `${(100 * testAccuracy).toFixed(2)}% of ${options.testImages.toLocaleString()} (loss ${testLoss.toFixed(4)})`;
  $("train").disabled = false;
  $("save").disabled = false;
  await classifyDrawing();
  return { seconds, samplesPerSecond: (options.steps * batch) / seconds, testLoss, testAccuracy, batch };
}

async function save() {
  const bytes = await session.save();
  const link = document.createElement("a");
  link.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  link.download = `kiln-${$("model").value}.safetensors`;
  link.click();
}

// Drawing: white strokes on black, as Fashion-MNIST's items are light on dark.
const draw = $("draw");
const pen = draw.getContext("2d");
let drawing = false;
function clearDrawing() {
  pen.fillStyle = "#000";
  pen.fillRect(0, 0, draw.width, draw.height);
  $("top3").textContent = "";
}
function at(e) {
  const r = draw.getBoundingClientRect();
  return [((e.clientX - r.left) * draw.width) / r.width, ((e.clientY - r.top) * draw.height) / r.height];
}
draw.addEventListener("pointerdown", (e) => { drawing = true; pen.beginPath(); pen.moveTo(...at(e)); });
draw.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  pen.strokeStyle = "#fff"; pen.lineWidth = 16; pen.lineCap = "round"; pen.lineJoin = "round";
  pen.lineTo(...at(e)); pen.stroke();
});
draw.addEventListener("pointerup", () => { drawing = false; classifyDrawing().catch(fail); });
draw.addEventListener("dragover", (e) => e.preventDefault());
draw.addEventListener("drop", async (e) => {
  e.preventDefault();
  const file = e.dataTransfer.files[0];
  if (!file) return;
  const image = await createImageBitmap(file);
  pen.drawImage(image, 0, 0, draw.width, draw.height);
  // A photo of an item on a light background is turned light-on-dark, as the CLI does.
  const border = pen.getImageData(0, 0, draw.width, 1).data;
  let light = 0;
  for (let i = 0; i < border.length; i += 4) light += border[i];
  if (light / (border.length / 4) > 127) {
    pen.globalCompositeOperation = "difference";
    pen.fillStyle = "#fff";
    pen.fillRect(0, 0, draw.width, draw.height);
    pen.globalCompositeOperation = "source-over";
  }
  await classifyDrawing();
});

async function classifyDrawing() {
  if (!session) return;
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const ctx = small.getContext("2d");
  ctx.drawImage(draw, 0, 0, 28, 28);
  const rgba = ctx.getImageData(0, 0, 28, 28).data;
  const pixels = new Float32Array(28 * 28);
  for (let i = 0; i < pixels.length; i++) pixels[i] = (rgba[4 * i] + rgba[4 * i + 1] + rgba[4 * i + 2]) / (3 * 255);
  const probabilities = await session.predict(pixels);
  const top = [...probabilities].map((p, i) => [p, CLASSES[i]]).sort((a, b) => b[0] - a[0]).slice(0, 3);
  $("top3").innerHTML = top.map(([p, name]) => `<div>${(100 * p).toFixed(1)}% ${name}</div>`).join("");
}

// Paints test image `index` on the drawing canvas, as the user would draw it.
function paintTestImage(index) {
  const pixels = session.testImage(index);
  if (!pixels) return;
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const ctx = small.getContext("2d");
  const image = ctx.createImageData(28, 28);
  pixels.forEach((p, i) => { image.data.set([255 * p, 255 * p, 255 * p, 255], 4 * i); });
  ctx.putImageData(image, 0, 0);
  pen.imageSmoothingEnabled = false;
  pen.drawImage(small, 0, 0, draw.width, draw.height);
}

async function put(name, body) {
  const response = await fetch(`results/${name}`, { method: "PUT", body });
  if (!response.ok) throw new Error(`PUT results/${name}: ${response.status}`);
}

// The browser test: train as the query says, then send the figures and weights back.
async function testTraining() {
  const options = {
    model: query.get("model") || "mlp",
    steps: Number(query.get("steps") || 300),
    trainImages: Number(query.get("train") || 10000),
    testImages: Number(query.get("test_images") || 2000),
  };
  $("model").value = options.model;
  $("steps").value = options.steps;
  const figures = await train(options);
  paintTestImage(0);
  await classifyDrawing();
  const weights = await session.save();
  await put("weights.safetensors", weights);
  const report = { ...options, ...figures, adapter: session.adapter(), losses: history.map((p) => p.loss) };
  await put("train.json", JSON.stringify(report));
  console.log(`KILN_TEST done ${JSON.stringify({ testAccuracy: figures.testAccuracy, samplesPerSecond: figures.samplesPerSecond })}`);
}

// The browser test of the kernels: the golden cases of the ops the query names (all by default).
async function testGolden() {
  const ops = query.get("ops") ? query.get("ops").split(",") : null;
  const listing = await fetch("golden/cases.json");
  if (!listing.ok) throw new Error(`golden/cases.json: ${listing.status}`);
  const names = (await listing.json()).filter((n) => !ops || ops.includes(n.split("__")[0]));
  const urls = names.map((n) => `golden/cases/${n}`);
  const contents = await Promise.all(urls.map(async (url) => new Uint8Array(await (await fetch(url)).arrayBuffer())));
  const report = JSON.parse(await checkGolden(urls, contents));
  await put("golden.json", JSON.stringify(report));
  const failed = report.filter((r) => r.problems.length > 0).length;
  $("test").textContent = `golden cases: ${report.length - failed} passed, ${failed} failed`;
  console.log(`KILN_TEST done ${JSON.stringify({ cases: report.length, failed })}`);
}

async function main() {
  await init();
  clearDrawing();
  drawChart(Number($("steps").value));
  $("clear").addEventListener("click", clearDrawing);
  $("save").addEventListener("click", () => save().catch(fail));
  $("train").addEventListener("click", () => {
    const options = {
      model: $("model").value,
      steps: Number($("steps").value),
      trainImages: Number($("images").value),
      testImages: 10000,
    };
    train(options).catch((e) => { fail(e); $("train").disabled = false; });
  });
  if (!navigator.gpu) throw new Error("this browser has no WebGPU (navigator.gpu): try a recent Chrome, Edge or Firefox");
  if (query.get("mode") === "test") await testTraining();
  if (query.get("mode") === "golden") await testGolden();
}

main().catch(fail);
