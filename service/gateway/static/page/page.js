// vidrec's page: upload a clip, stream the webcam, follow sessions. Plain JavaScript, no build
// step, no outside requests; every URL is relative to the page, so it works under a path prefix.
// Data from the server is put in the DOM as text, never as HTML.

const KEY_STORAGE = "vidrec.apiKey";
const MAX_EVENTS = 200;
const MAX_BUFFERED_BYTES = 512 * 1024; // skip a camera frame rather than queue behind a slow link
const FRAME_WIDTH = 320; // JPEG width sent; the worker resizes to the model's input anyway
const REPLAY_STRIDE = 4; // a label every 4 frames when a clip is replayed through the live model
const PALETTE = ["#1f6feb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0c8599", "#c2255c", "#5c940d", "#364fc7", "#862e9c", "#495057"];

const $ = (id) => document.getElementById(id);

const state = {
  key: sessionStorage.getItem(KEY_STORAGE) || "",
  models: new Map(),
  defaults: {},
  live: null,
  follow: null,
  clipUrl: null,
};

// --- helpers -----------------------------------------------------------------------------------

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props)) {
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

const ms = (value) => (value >= 100 ? value.toFixed(0) : value.toFixed(1)) + " ms";
const gmacs = (value) => (value >= 10 ? value.toFixed(1) : value.toFixed(3)) + " GMACs";
const pct = (value) => (value * 100).toFixed(value < 0.1 ? 1 : 0) + "%";

function describeBudget(budget) {
  if (!budget || typeof budget !== "object") return String(budget);
  if ("fraction" in budget) return `${pct(budget.fraction)} of the tokens per frame`;
  if ("tokens" in budget) return `${budget.tokens} tokens per frame`;
  if ("threshold" in budget) {
    const gates = `threshold ${JSON.stringify(budget.threshold)}`;
    return "input" in budget ? `${gates}, input ${JSON.stringify(budget.input)}` : gates;
  }
  if ("keep_all" in budget) return "dense: every token";
  return JSON.stringify(budget);
}

function showError(box, error) {
  box.replaceChildren();
  if (!error) {
    box.hidden = true;
    return;
  }
  if (error instanceof ApiFailure) {
    box.append(el("code", { text: error.code }), ` ${error.message}`);
    if (error.requestId) box.append(el("span", { class: "muted small", text: ` (request ${error.requestId})` }));
    if (error.status === 401) box.append(el("div", { class: "small", text: "Enter a valid API key at the top of the page." }));
    if (error.status === 403) box.append(el("div", { class: "small", text: "Use an API key with the scope this needs." }));
  } else {
    box.append(String(error.message || error));
  }
  box.hidden = false;
}

class ApiFailure extends Error {
  constructor(status, code, message, requestId = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.requestId = requestId; // what the server's logs know this request by
  }
}

function authHeaders() {
  return state.key ? { Authorization: `Bearer ${state.key}` } : {};
}

async function api(path, options = {}) {
  const response = await fetch(path, {
    ...options,
    headers: { Accept: "application/json", ...authHeaders(), ...(options.headers || {}) },
  });
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  if (!response.ok) {
    const error = (body && body.error) || {};
    if (response.status === 401) needKey();
    throw new ApiFailure(
      response.status,
      error.code || `http_${response.status}`,
      error.message || response.statusText,
      error.request_id || response.headers.get("X-Request-ID"),
    );
  }
  return { status: response.status, body };
}

function wsUrl(path, params = {}) {
  const url = new URL(path, location.href);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  for (const [name, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
  }
  return url.toString();
}

function openSocket(url) {
  // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol, and only when
  // there is one (a server without keys would not answer a subprotocol).
  return state.key ? new WebSocket(url, ["vidrec", `bearer.${state.key}`]) : new WebSocket(url);
}

function needKey() {
  const notice = $("notice");
  notice.textContent = "This server asks for an API key: enter it at the top of the page.";
  notice.hidden = false;
}

// --- server, key and models --------------------------------------------------------------------

async function checkServer() {
  const pill = $("server");
  try {
    const response = await fetch("readyz", { headers: authHeaders() });
    const body = await response.json();
    if (body.ready) {
      pill.textContent = `ready · ${body.workers_ready ?? body.workers} worker(s)`;
      pill.className = "pill ok";
    } else {
      pill.textContent = `not ready: ${body.reason || "no worker"}`;
      pill.className = "pill bad";
    }
  } catch {
    pill.textContent = "server unreachable";
    pill.className = "pill bad";
  }
}

async function loadModels() {
  try {
    const { body } = await api("v1/models");
    state.models = new Map(body.models.map((m) => [m.name, m]));
    state.defaults = body.defaults || {};
    fillModels($("clip-model"), body.models.filter((m) => (m.serving?.clip ?? [1]).length), state.defaults.clip);
    fillModels($("live-model"), body.models.filter((m) => m.live), state.defaults.live);
    $("notice").hidden = true;
  } catch (error) {
    if (!(error instanceof ApiFailure && error.status === 401)) {
      const notice = $("notice");
      notice.textContent = `Could not list the models: ${error.message}`;
      notice.hidden = false;
    }
  }
}

function fillModels(select, models, preferred) {
  const current = select.value;
  select.replaceChildren(
    ...models.map((m) => el("option", { value: m.name, text: `${m.name} (${m.family})` })),
  );
  if (!models.length) select.append(el("option", { value: "", text: "no model served" }));
  select.value = models.some((m) => m.name === current) ? current : preferred || "";
}

function setupKey() {
  const input = $("api-key");
  input.value = state.key;
  const show = () => ($("key-state").textContent = state.key ? "key set" : "");
  show();
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.key = input.value.trim();
    if (state.key) sessionStorage.setItem(KEY_STORAGE, state.key);
    else sessionStorage.removeItem(KEY_STORAGE);
    show();
    loadModels();
    refreshSessions();
  });
}

// --- clip upload -------------------------------------------------------------------------------

function setupUpload() {
  const video = $("clip-video");
  $("clip-replay").addEventListener("click", replayClip);
  $("clip-file").addEventListener("change", () => {
    const file = $("clip-file").files[0];
    if (state.clipUrl) URL.revokeObjectURL(state.clipUrl);
    state.clipUrl = file ? URL.createObjectURL(file) : null;
    video.src = state.clipUrl || "";
  });
  $("clip-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = $("clip-file").files[0];
    if (!file) return;
    const form = new FormData();
    form.append("file", file, file.name);
    for (const [name, id] of [["model", "clip-model"], ["top_k", "clip-topk"], ["clips", "clip-views"], ["crops", "clip-crops"]]) {
      if ($(id).value) form.append(name, $(id).value);
    }
    const button = $("clip-submit");
    button.disabled = true;
    $("clip-status").textContent = "uploading…";
    showError($("clip-error"), null);
    const started = performance.now();
    try {
      let { status, body } = await api("v1/clips", { method: "POST", body: form });
      while (status === 202 || (body && (body.status === "queued" || body.status === "running"))) {
        // Not answered within the server's wait: follow the job.
        $("clip-status").textContent = `job ${body.job_id.slice(0, 8)} ${body.status}…`;
        await new Promise((resolve) => setTimeout(resolve, 500));
        ({ status, body } = await api(body.status_url || `v1/jobs/${body.job_id}`));
        if (body.status === "failed") throw new ApiFailure(body.error.http_status, body.error.code, body.error.message);
        if (body.status === "done") body = body.result;
      }
      renderClip(body, performance.now() - started);
      $("clip-status").textContent = `answered in ${ms(performance.now() - started)}`;
    } catch (error) {
      $("clip-status").textContent = "";
      showError($("clip-error"), error);
    } finally {
      button.disabled = false;
    }
  });
}

function renderClip(answer, roundTripMs) {
  $("clip-result").hidden = false;
  const info = answer.sampled?.clip || {};
  state.clip = { fps: +(info.fps ?? info.avg_fps) || 0, frames: +info.num_frames || 0, duration: +info.duration_s || 0 };
  $("clip-live").replaceChildren();
  $("clip-replay-status").textContent = "";
  $("clip-replay").disabled = !(state.clip.fps && state.clip.frames);
  renderLabels($("clip-labels"), answer.labels);

  const t = answer.timing_ms || {};
  const worker = (t.queue_wait || 0) + (t.decode || 0) + (t.inference || 0);
  const parts = [
    ["queue wait", t.queue_wait || 0, "--queue"],
    ["decode", t.decode || 0, "--decode"],
    ["inference", t.inference || 0, "--inference"],
    ["rest on the server", Math.max(0, (t.total || 0) - worker), "--other"],
    ["upload and HTTP", Math.max(0, roundTripMs - (t.total || 0)), "--line"],
  ];
  const whole = Math.max(roundTripMs, t.total || 0, 1e-6);
  $("clip-total").textContent = `· ${ms(t.total || 0)} on the server, ${ms(roundTripMs)} round trip`;
  $("clip-timing").replaceChildren(
    ...parts.map(([name, value, color]) => {
      const block = el("div", { title: `${name}: ${ms(value)}` });
      block.style.setProperty("width", `${(100 * value) / whole}%`);
      block.style.setProperty("background", `var(${color})`);
      return block;
    }),
  );
  $("clip-timing-legend").replaceChildren(
    ...parts.map(([name, value, color]) => {
      const item = el("li", { text: `${name} ${ms(value)}` });
      item.style.setProperty("--swatch", `var(${color})`);
      return item;
    }),
  );

  const sampled = answer.sampled || {};
  const clip = sampled.clip || {};
  const c = answer.compute || {};
  const rows = [
    ["GMACs", c.gmacs !== undefined ? gmacs(c.gmacs) : "–"],
    ["frames run", c.frames ?? "–"],
    ["views", `${sampled.views ?? "–"} (${sampled.clips ?? 1} in time × ${sampled.crops ?? 1} crops)`],
    ["frames decoded", sampled.frames_decoded ?? "–"],
    ["model", answer.model],
    ["worker", answer.worker ?? "–"],
  ];
  $("clip-compute").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  const fps = clip.fps ?? clip.avg_fps;
  $("clip-meta").textContent = clip.codec
    ? `${clip.codec} ${clip.width}×${clip.height}, ${clip.num_frames} frames, ${(+clip.duration_s).toFixed(2)} s at ${(+fps).toFixed(1)} fps`
    : "";
  renderTimeline(sampled, clip);
}

function renderLabels(list, labels) {
  list.replaceChildren(
    ...(labels || []).map(({ label, score }) => {
      const fill = el("div", { class: "bar-fill" });
      fill.style.setProperty("width", `${Math.max(0.5, score * 100)}%`);
      return el(
        "li",
        {},
        el("span", { class: "name", text: label }),
        el("div", { class: "bar-track" }, fill),
        el("span", { class: "score", text: pct(score) }),
      );
    }),
  );
}

function renderTimeline(sampled, clip) {
  const box = $("clip-timeline");
  const times = sampled.timestamps_s || [];
  const indices = sampled.indices || [];
  const last = Math.max(0, ...times.flat());
  const duration = Math.max(+clip.duration_s || 0, last, 1e-6);
  const at = (seconds) => `${(100 * seconds) / duration}%`;
  const rows = times.map((row, view) => {
    const track = el("div", { class: "track", title: "click to play from here" });
    const span = el("div", { class: "span" });
    span.style.setProperty("left", at(Math.min(...row)));
    span.style.setProperty("width", at(Math.max(...row) - Math.min(...row)));
    track.append(span);
    row.forEach((seconds, i) => {
      const tick = el("div", { class: "tick", title: `frame ${indices[view]?.[i] ?? "?"} at ${seconds.toFixed(2)} s` });
      tick.style.setProperty("left", at(seconds));
      track.append(tick);
    });
    track.addEventListener("click", (event) => {
      const rect = track.getBoundingClientRect();
      const video = $("clip-video");
      video.currentTime = ((event.clientX - rect.left) / rect.width) * duration;
      video.play().catch(() => {});
    });
    const frames = indices[view] || [];
    const note = `frames ${frames[0] ?? "?"}–${frames[frames.length - 1] ?? "?"} · ${Math.min(...row).toFixed(2)}–${Math.max(...row).toFixed(2)} s`;
    return el("div", { class: "row" }, el("span", { text: `window ${view + 1}` }), track, el("span", { class: "muted", text: note }));
  });
  const axis = el(
    "div",
    { class: "axis" },
    el("span"),
    el("div", { class: "scale" }, el("span", { text: "0 s" }), el("span", { text: `${(duration / 2).toFixed(2)} s` }), el("span", { text: `${duration.toFixed(2)} s` })),
    el("span"),
  );
  box.replaceChildren(...rows, axis);
}

// --- a clip replayed through the live model ---------------------------------------------------

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function labelColor(label) {
  const labels = state.models.get($("live-model").value)?.labels || [];
  let index = labels.indexOf(label);
  if (index < 0) index = [...label].reduce((sum, ch) => sum + ch.charCodeAt(0), 0);
  return PALETTE[index % PALETTE.length];
}

function seek(video, seconds) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, 2000); // a seek that never reports must not hang the replay
    video.addEventListener("seeked", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
    video.currentTime = seconds;
  });
}

function jpegOf(video, canvas) {
  const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
  canvas.width = Math.round(video.videoWidth * scale);
  canvas.height = Math.round(video.videoHeight * scale);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", 0.9));
}

// Sends the clip's frames, decoded by the browser, over the live WebSocket at the clip's frame
// rate, and draws a segment per labels event on the clip's time axis.
async function replayClip() {
  const clip = state.clip;
  const video = $("clip-video");
  if (!clip || !video.videoWidth) return;
  const button = $("clip-replay");
  const status = $("clip-replay-status");
  button.disabled = true;
  video.pause();
  const track = el("div", { class: "track" });
  const note = el("span", { class: "muted", text: `a label every ${REPLAY_STRIDE} frames` });
  $("clip-live").replaceChildren(el("div", { class: "row" }, el("span", { text: "live labels" }), track, note));
  const duration = Math.max(clip.duration, clip.frames / clip.fps);
  const at = (seconds) => `${(100 * Math.min(seconds, duration)) / duration}%`;
  // The last frame that ends a labels event: the socket closes once its event is in.
  const lastEvent = Math.floor(clip.frames / REPLAY_STRIDE) * REPLAY_STRIDE - 1;
  let latest = null;
  let windows = 0;
  let finished;
  const allIn = new Promise((resolve) => (finished = resolve));

  const ws = openSocket(wsUrl("v1/streams/live", { model: $("live-model").value, stride: REPLAY_STRIDE }));
  ws.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    if (event.type === "labels") {
      const top = event.labels?.[0];
      const last = event.input_index ?? event.frame_index - 1;
      const first = Math.max(0, last + 1 - REPLAY_STRIDE);
      const c = event.compute || {};
      const seg = el("div", {
        class: top && top.score < 0.5 ? "seg weak" : "seg",
        title: `frames ${first}–${last}: ${top ? `${top.label} ${pct(top.score)}` : "–"} · ${c.gmacs?.toFixed(3)} of ${c.dense_gmacs?.toFixed(3)} dense GMACs`,
        text: top ? top.label : "–",
      });
      seg.style.setProperty("left", at(first / clip.fps));
      seg.style.setProperty("width", at((last + 1 - first) / clip.fps));
      seg.style.setProperty("background", top ? labelColor(top.label) : "var(--other)");
      track.append(seg);
      latest = event;
      windows += 1;
      if (last >= lastEvent) finished();
    } else if (event.type === "error") {
      status.textContent = `${event.code}: ${event.message}`;
    }
  });
  ws.addEventListener("close", () => finished());
  try {
    await new Promise((resolve, reject) => {
      let opened = false;
      ws.addEventListener("open", () => {
        opened = true;
        resolve();
      }, { once: true });
      ws.addEventListener("close", () => {
        if (opened) return;
        explainRefusal($("clip-error"));
        reject(new Error("the live socket was refused"));
      }, { once: true });
    });
    const canvas = document.createElement("canvas");
    for (let i = 0; i < clip.frames && ws.readyState === WebSocket.OPEN; i++) {
      status.textContent = `sending frame ${i + 1} of ${clip.frames}…`;
      await seek(video, (i + 0.5) / clip.fps); // the middle of frame i's display time
      const blob = await jpegOf(video, canvas);
      if (blob && ws.readyState === WebSocket.OPEN) ws.send(blob);
      await sleep(1000 / clip.fps);
    }
    await Promise.race([allIn, sleep(10000)]);
    const t = latest?.totals;
    status.textContent = t
      ? `${windows} labels events · ${gmacs(t.gmacs)} spent, ${gmacs(t.dense_gmacs)} dense (${(t.dense_gmacs / t.gmacs).toFixed(2)}× fewer) · ${latest.model}`
      : status.textContent || "no labels came back";
  } catch (error) {
    status.textContent = String(error.message || error);
  } finally {
    if (ws.readyState === WebSocket.OPEN) {
      ws.send(JSON.stringify({ type: "close" }));
      ws.close(1000);
    }
    button.disabled = false;
  }
}

// --- live camera -------------------------------------------------------------------------------

function setupCamera() {
  $("camera-start").addEventListener("click", startCamera);
  $("camera-stop").addEventListener("click", () => stopCamera("stopped"));
  const slider = $("budget");
  const showSlider = () => ($("budget-value").textContent = pct(+slider.value));
  showSlider();
  slider.addEventListener("input", showSlider);
  slider.addEventListener("change", () => setBudget(+slider.value));
  $("budget-dense").addEventListener("click", () => setBudget("all"));
  $("budget-recommended").addEventListener("click", () => {
    const row = state.models.get($("live-model").value);
    setBudget(row?.recommended_budget ?? null);
  });
}

function setBudget(budget) {
  const live = state.live;
  if (live && live.ws.readyState === WebSocket.OPEN) {
    if (budget !== null) live.ws.send(JSON.stringify({ budget }));
  } else {
    // Before the session: the budget goes in the query string (null: the server's default).
    state.pendingBudget = budget;
    $("budget-now").textContent = budget === null ? "The server's default budget." : `Starts with ${describeBudget(typeof budget === "number" ? { fraction: budget } : budget === "all" ? { keep_all: true } : budget)}.`;
  }
}

async function startCamera() {
  showError($("camera-error"), null);
  if (!navigator.mediaDevices?.getUserMedia) {
    showError($("camera-error"), new Error("This browser gives no camera here (it needs https or localhost)."));
    return;
  }
  $("camera-start").disabled = true;
  let media;
  try {
    media = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 }, height: { ideal: 480 } }, audio: false });
  } catch (error) {
    $("camera-start").disabled = false;
    showError($("camera-error"), new Error(`No camera: ${error.message || error.name}`));
    return;
  }
  const video = $("camera-video");
  video.srcObject = media;
  await video.play().catch(() => {});
  $("camera-placeholder").hidden = true;

  const pending = state.pendingBudget;
  const budget = pending === undefined || pending === null ? null : typeof pending === "number" ? String(pending) : typeof pending === "string" ? pending : JSON.stringify(pending);
  const ws = openSocket(wsUrl("v1/streams/live", { model: $("live-model").value, budget }));
  const live = { ws, media, timer: null, sent: 0, skipped: 0, canvas: document.createElement("canvas"), lastError: null, sessionId: null };
  state.live = live;
  $("camera-stop").disabled = false;
  $("camera-status").textContent = "connecting…";
  ws.addEventListener("open", () => {
    live.opened = true;
    const fps = +$("live-fps").value;
    live.timer = setInterval(() => sendFrame(live), 1000 / fps);
  });
  ws.addEventListener("message", (message) => onLiveEvent(live, JSON.parse(message.data)));
  ws.addEventListener("close", (event) => {
    if (state.live !== live) return;
    stopCamera(live.lastError ? "refused" : `closed (${event.code})`);
    if (!live.opened) explainRefusal($("camera-error"));
  });
}

// A browser is not told why a WebSocket handshake was refused; an HTTP request to a route of
// the same scopes is, and its error says what the key lacks.
async function explainRefusal(box) {
  try {
    await api("v1/streams");
    showError(box, new Error("The server refused the connection; its log says why."));
  } catch (error) {
    showError(box, error);
  }
}

function sendFrame(live) {
  const video = $("camera-video");
  if (live.ws.readyState !== WebSocket.OPEN || !video.videoWidth) return;
  if (live.ws.bufferedAmount > MAX_BUFFERED_BYTES) {
    live.skipped += 1;
    return;
  }
  const canvas = live.canvas;
  canvas.width = FRAME_WIDTH;
  canvas.height = Math.round((FRAME_WIDTH * video.videoHeight) / video.videoWidth);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  canvas.toBlob(
    (blob) => {
      if (blob && live.ws.readyState === WebSocket.OPEN) {
        live.ws.send(blob);
        live.sent += 1;
      }
    },
    "image/jpeg",
    0.85,
  );
}

function onLiveEvent(live, event) {
  switch (event.type) {
    case "session":
      live.sessionId = event.session_id;
      live.window = event.window;
      $("camera-status").textContent = `session ${event.session_id.slice(0, 8)} on ${event.owner}, labels every ${event.stride} frames over ${event.window}`;
      $("budget-now").textContent = `Now: ${describeBudget(event.budget)}.`;
      refreshSessions();
      break;
    case "labels":
      renderLive(live, event);
      break;
    case "budget":
      $("budget-now").textContent = `Now: ${describeBudget(event.budget)}.`;
      break;
    case "error":
      live.lastError = event;
      showError($("camera-error"), new ApiFailure(0, event.code, event.message, event.request_id));
      break;
    case "moved":
      $("camera-status").textContent = `moved to worker ${event.owner}; it starts again from a full frame`;
      break;
    case "end":
      $("camera-status").textContent = `session ended: ${event.state}`;
      break;
    default:
      break;
  }
}

function renderLive(live, event) {
  const [top, ...rest] = event.labels || [];
  $("overlay").hidden = !top;
  if (top) {
    $("overlay-label").replaceChildren(top.label, el("span", { class: "score", text: pct(top.score) }));
    $("overlay-rest").textContent = rest.slice(0, 2).map((l) => `${l.label} ${pct(l.score)}`).join(" · ");
  }
  const totals = event.totals || event.compute || {};
  const ratio = totals.dense_gmacs ? totals.gmacs / totals.dense_gmacs : 1;
  const fill = $("gauge-fill");
  fill.setAttribute("stroke-dasharray", `${Math.min(100, ratio * 100)} 100`);
  fill.setAttribute("visibility", "visible");
  $("gauge-pct").textContent = pct(ratio);
  const c = event.compute || {};
  const timing = event.timing_ms;
  const rows = [
    ["spent (session)", totals.gmacs !== undefined ? gmacs(totals.gmacs) : "–"],
    ["dense would be", totals.dense_gmacs !== undefined ? gmacs(totals.dense_gmacs) : "–"],
    ["saving", ratio > 0 ? `${(1 / ratio).toFixed(2)}× fewer GMACs` : "–"],
    ["tokens recomputed", c.recompute_fraction !== undefined ? `${pct(c.recompute_fraction)} (last window)` : "–"],
    ["latency", timing ? `${ms(timing.total)} (inference ${ms(timing.inference ?? 0)})` : event.latency_ms !== undefined ? ms(event.latency_ms) : "–"],
    ["frames", `${live.sent} sent, ${event.frame_index} processed, ${event.dropped ?? 0} dropped`],
  ];
  $("live-numbers").replaceChildren(...rows.flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: v })]));
}

function stopCamera(reason) {
  const live = state.live;
  if (!live) return;
  state.live = null;
  clearInterval(live.timer);
  if (live.ws.readyState === WebSocket.OPEN) {
    live.ws.send(JSON.stringify({ type: "close" }));
    live.ws.close(1000);
  }
  for (const track of live.media.getTracks()) track.stop();
  $("camera-video").srcObject = null;
  $("camera-placeholder").hidden = false;
  $("overlay").hidden = true;
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  $("camera-status").textContent = reason;
  setTimeout(refreshSessions, 500);
}

// --- sessions ----------------------------------------------------------------------------------

async function refreshSessions() {
  const status = $("sessions-status");
  try {
    const { body } = await api("v1/streams");
    const sessions = Array.isArray(body) ? body : body.sessions || [];
    renderSessions(sessions);
    status.textContent = `${sessions.length} session(s), ${new Date().toLocaleTimeString()}`;
    showError($("sessions-error"), null);
  } catch (error) {
    if (error instanceof ApiFailure && (error.status === 404 || error.status === 405)) {
      status.textContent = "This server does not list its sessions; follow one by opening it here.";
    } else {
      showError($("sessions-error"), error);
    }
  }
}

function renderSessions(sessions) {
  const rows = sessions.map((s) => {
    const latest = s.latest?.labels?.[0];
    const tr = el(
      "tr",
      { class: state.follow?.id === s.session_id ? "followed" : "" },
      el("td", {}, el("code", { text: s.session_id.slice(0, 8), title: s.session_id })),
      el("td", { text: s.kind }),
      el("td", { text: s.model }),
      el("td", { class: `state-${s.state}`, text: s.state }),
      el("td", { text: s.source || "–" }),
      el("td", { text: latest ? `${latest.label} ${pct(latest.score)}` : "–" }),
      el(
        "td",
        {},
        el("button", { type: "button", text: "Events", onclick: () => followSession(s.session_id) }),
        " ",
        el("button", { type: "button", text: "Stop", onclick: () => stopSession(s.session_id) }),
      ),
    );
    tr.dataset.session = s.session_id;
    return tr;
  });
  if (!rows.length) rows.push(el("tr", {}, el("td", { colspan: "7", class: "muted empty", text: "No session open." })));
  $("sessions-rows").replaceChildren(...rows);
}

function followSession(id) {
  closeFollow();
  const list = $("events");
  list.replaceChildren();
  $("events-session").textContent = id;
  $("events-box").hidden = false;
  const ws = openSocket(wsUrl(`v1/streams/${encodeURIComponent(id)}/events`));
  state.follow = { id, ws };
  let opened = false;
  ws.addEventListener("open", () => (opened = true));
  ws.addEventListener("close", () => {
    if (!opened) explainRefusal($("sessions-error"));
  });
  for (const tr of $("sessions-rows").children) tr.classList.toggle("followed", tr.dataset.session === id);
  ws.addEventListener("message", (message) => {
    const event = JSON.parse(message.data);
    list.append(el("li", {}, el("span", { class: "type", text: event.type }), ` ${summarise(event)}`));
    while (list.children.length > MAX_EVENTS) list.firstChild.remove();
    list.scrollTop = list.scrollHeight;
  });
}

function summarise(event) {
  switch (event.type) {
    case "labels": {
      const top = event.labels?.[0];
      const c = event.compute || {};
      return `frame ${event.frame_index}: ${top ? `${top.label} ${pct(top.score)}` : "–"} · ${c.gmacs?.toFixed(3)}/${c.dense_gmacs?.toFixed(3)} GMACs`;
    }
    case "session":
      return `${event.kind} ${event.model} ${event.state ?? ""} budget ${describeBudget(event.budget)}`;
    case "source":
      return `${event.state}, ${event.frames_received ?? 0} frames${event.error ? `, ${event.error}` : ""}`;
    case "error":
      return `${event.code}: ${event.message}`;
    default:
      return JSON.stringify(event);
  }
}

function closeFollow() {
  if (state.follow) {
    state.follow.ws.close(1000);
    state.follow = null;
  }
}

async function stopSession(id) {
  try {
    await api(`v1/streams/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (error) {
    showError($("sessions-error"), error);
  }
  refreshSessions();
}

function setupSessions() {
  $("sessions-refresh").addEventListener("click", refreshSessions);
  $("events-close").addEventListener("click", () => {
    closeFollow();
    $("events-box").hidden = true;
  });
  $("rtsp-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    showError($("sessions-error"), null);
    try {
      const { body } = await api("v1/streams", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ source: $("rtsp-url").value.trim() }),
      });
      await refreshSessions();
      followSession(body.session_id);
    } catch (error) {
      showError($("sessions-error"), error);
    }
  });
}

// --- start -------------------------------------------------------------------------------------

setupKey();
setupUpload();
setupCamera();
setupSessions();
checkServer();
loadModels();
refreshSessions();
setInterval(checkServer, 10000);
setInterval(() => {
  if (!document.hidden) refreshSessions();
}, 5000);
