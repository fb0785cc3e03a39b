// AuRA playground: one clip, both paths at once, answers streamed from POST /v1/speech-chat.
"use strict";

const $ = (id) => document.getElementById(id);
const STAGES = {
  aura: [["decode", "decode"], ["features", "features"], ["embed", "embed"], ["ttft", "first token"], ["total", "total"]],
  cascade: [["decode", "decode"], ["asr", "ASR"], ["ttft", "first token"], ["total", "total"]],
};
let audio = null; // {blob, name}
let recorder = null;
const finished = {}; // mode -> timings_ms, for a shared scale across both charts

$("api-key").value = localStorage.getItem("aura-api-key") || "";
$("api-key").addEventListener("change", (e) => localStorage.setItem("aura-api-key", e.target.value));

function headers() {
  const key = $("api-key").value.trim();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function setAudio(blob, name, how) {
  audio = { blob, name };
  const url = URL.createObjectURL(blob);
  $("preview").src = url;
  $("preview").hidden = false;
  $("audio-info").textContent = `${how}: ${name} (${Math.round(blob.size / 1024)} KiB)`;
  $("send").disabled = false;
}

$("file").addEventListener("change", (e) => {
  const f = e.target.files[0];
  if (f) setAudio(f, f.name, "Uploaded");
});

$("record").addEventListener("click", async () => {
  const button = $("record");
  if (recorder && recorder.state === "recording") {
    recorder.stop();
    return;
  }
  if (!navigator.mediaDevices || !window.MediaRecorder) {
    $("status").textContent = "This browser cannot record audio here (recording needs https or localhost); upload a file instead.";
    return;
  }
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    const type = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/webm"].find((t) => MediaRecorder.isTypeSupported(t)) || "";
    recorder = new MediaRecorder(stream, type ? { mimeType: type } : {});
    const chunks = [];
    recorder.ondataavailable = (e) => chunks.push(e.data);
    recorder.onstop = () => {
      stream.getTracks().forEach((t) => t.stop());
      const mime = recorder.mimeType || "audio/webm";
      setAudio(new Blob(chunks, { type: mime }), mime.includes("ogg") ? "recording.ogg" : "recording.webm", "Recorded");
      button.textContent = "● Record";
      button.setAttribute("aria-pressed", "false");
    };
    recorder.start();
    button.textContent = "■ Stop";
    button.setAttribute("aria-pressed", "true");
    $("audio-info").textContent = "Recording… press Stop when done.";
  } catch (err) {
    $("status").textContent = `Microphone unavailable: ${err.message}. Upload a file instead.`;
  }
});

function panel(mode) {
  const root = $(`path-${mode}`);
  const q = (role) => root.querySelector(`[data-role=${role}]`);
  return { answer: q("answer"), error: q("error"), timings: q("timings"), transcript: q("transcript") };
}

function reset(mode) {
  const p = panel(mode);
  p.answer.textContent = "";
  p.error.hidden = true;
  p.error.textContent = "";
  p.timings.replaceChildren();
  if (p.transcript) { p.transcript.hidden = true; p.transcript.textContent = ""; }
  delete finished[mode];
}

function showError(mode, message) {
  const p = panel(mode);
  p.error.textContent = message;
  p.error.hidden = false;
}

function drawTimings() {
  const max = Math.max(1, ...Object.values(finished).map((t) => t.total || 0));
  for (const [mode, t] of Object.entries(finished)) {
    const box = panel(mode).timings;
    box.replaceChildren();
    for (const [key, label] of STAGES[mode]) {
      if (t[key] === undefined) continue;
      const row = document.createElement("div");
      row.className = "bar";
      row.dataset.stage = key;
      row.innerHTML = `<span class="name"></span><span class="track" role="img"><span class="fill"></span></span><span class="ms"></span>`;
      row.querySelector(".name").textContent = label;
      row.querySelector(".track").setAttribute("aria-label", `${label}: ${t[key].toFixed(0)} ms`);
      row.querySelector(".fill").style.width = `${Math.max(0.5, (100 * t[key]) / max)}%`;
      row.querySelector(".ms").textContent = `${t[key].toFixed(0)} ms`;
      box.appendChild(row);
    }
  }
}

async function errorMessage(resp) {
  try {
    const body = await resp.json();
    return `${resp.status}: ${body.error ? body.error.message : JSON.stringify(body)}`;
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}

async function run(mode) {
  reset(mode);
  const p = panel(mode);
  const form = new FormData();
  form.append("audio", audio.blob, audio.name);
  form.append("mode", mode);
  form.append("stream", "true");
  form.append("max_tokens", $("max-tokens").value || "64");
  if ($("prompt").value.trim()) form.append("prompt", $("prompt").value.trim());
  if ($("system").value.trim()) form.append("system", $("system").value.trim());
  let resp;
  try {
    resp = await fetch("/v1/speech-chat", { method: "POST", body: form, headers: headers() });
  } catch (err) {
    showError(mode, `Network error: ${err.message}`);
    return;
  }
  if (!resp.ok) {
    showError(mode, await errorMessage(resp));
    return;
  }
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const line = block.split("\n").find((l) => l.startsWith("data: "));
      if (!line || line === "data: [DONE]") continue;
      const event = JSON.parse(line.slice(6));
      if (event.type === "delta") {
        p.answer.textContent += event.text;
      } else if (event.type === "done") {
        if (p.transcript && event.transcript !== null) {
          p.transcript.textContent = `Heard: “${event.transcript}”`;
          p.transcript.hidden = false;
        }
        finished[mode] = event.timings_ms;
        drawTimings();
      } else if (event.error) {
        showError(mode, event.error.message);
      }
    }
  }
}

$("ask").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (!audio) return;
  $("send").disabled = true;
  $("status").textContent = "Sending to both paths…";
  const t0 = performance.now();
  await Promise.all([run("aura"), run("cascade")]);
  $("status").textContent = `Done in ${((performance.now() - t0) / 1000).toFixed(2)} s.`;
  $("send").disabled = false;
});

// Say up front when the cascade is not served, or when the server wants a key.
fetch("/v1/models", { headers: headers() }).then(async (r) => {
  if (r.status === 401) { $("status").textContent = "This server needs an API key: enter it below the prompt."; return; }
  if (!r.ok) return;
  const ids = (await r.json()).data.map((m) => m.path);
  if (!ids.includes("cascade")) showError("cascade", "The cascade path is not configured on this server.");
}).catch(() => {});
