// The Hearth demo: a chat page on the JS API (pkg/hearth.js). Model picker (one click starts a
// model), download progress, streaming chat, conversations kept in this browser
// (conversations.js), cache manager; installable and offline through sw.js.

import { Engine, cache, hasWebGPU } from './pkg/hearth.js';
import { renderMarkdown } from './markdown.js';
import * as chats from './conversations.js';

const GB = 1e9;
/**
 * Presets. `gpu` is the GPU memory a 4096-token conversation holds (weights + KV cache +
 * activations, as `hearth inspect` plans it); longer conversations grow the KV cache.
 */
const PRESETS = [
  { id: 'smollm2', name: 'SmolLM2 135M Instruct', note: 'a tiny model for trying Hearth (pick Phi-4 for real answers), served by this page', url: new URL('models/SmolLM2-135M-Instruct.Q4_1.gguf', location.href).href, size: 0.098 * GB, gpu: 0.21 * GB, badge: 'try me' },
  { id: 'phi-4-mini', name: 'Phi-4-mini-instruct 3.8B', note: 'Q4_K_M · the recommended model', url: 'hf://bartowski/microsoft_Phi-4-mini-instruct-GGUF/microsoft_Phi-4-mini-instruct-Q4_K_M.gguf', size: 2.49 * GB, gpu: 3.12 * GB, badge: 'best' },
  { id: 'phi-4', name: 'Phi-4 14B', note: 'Q4_K_M · strongest, needs a big GPU', url: 'hf://bartowski/phi-4-GGUF/phi-4-Q4_K_M.gguf', size: 9.05 * GB, gpu: 10.06 * GB },
  { id: 'phi-4-reasoning', name: 'Phi-4-reasoning 14B', note: 'Q4_K_M · thinks step by step', url: 'hf://bartowski/microsoft_Phi-4-reasoning-GGUF/microsoft_Phi-4-reasoning-Q4_K_M.gguf', size: 9.05 * GB, gpu: 10.06 * GB },
  { id: 'phi-4-reasoning-plus', name: 'Phi-4-reasoning-plus 14B', note: 'Q4_K_M · longer, more accurate reasoning', url: 'hf://bartowski/microsoft_Phi-4-reasoning-plus-GGUF/microsoft_Phi-4-reasoning-plus-Q4_K_M.gguf', size: 9.05 * GB, gpu: 10.06 * GB },
  { id: 'phi-3.5-mini', name: 'Phi-3.5-mini-instruct 3.8B', note: 'Q4_K_M', url: 'hf://bartowski/Phi-3.5-mini-instruct-GGUF/Phi-3.5-mini-instruct-Q4_K_M.gguf', size: 2.39 * GB, gpu: 4.12 * GB },
  // Qwen 3 (no synthetic model of their shape here): weights + an f16 KV cache of 4,096 tokens
  // (28 or 36 layers × 8 key/value heads × 128) + activations, by the same plan.
  { id: 'qwen3-1.7b', name: 'Qwen3 1.7B', note: 'Q4_K_M · small and quick, thinks before answering', url: 'hf://bartowski/Qwen_Qwen3-1.7B-GGUF/Qwen_Qwen3-1.7B-Q4_K_M.gguf', size: 1.28 * GB, gpu: 1.80 * GB },
  { id: 'qwen3-4b', name: 'Qwen3 4B', note: 'Q4_K_M · thinks before answering', url: 'hf://bartowski/Qwen_Qwen3-4B-GGUF/Qwen_Qwen3-4B-Q4_K_M.gguf', size: 2.50 * GB, gpu: 3.17 * GB },
  // Gemma 3 (Gemma terms): weights + an f16 KV cache of 4,096 tokens on the global layers (one
  // in six) and a ring of the window and a micro-batch of 512 on the others (26 layers × 1
  // key/value head × 256, window 512; or 34 × 4 × 256, window 1,024) + activations, by the
  // same plan as Gemma 3 270M's measured one.
  { id: 'gemma3-1b', name: 'Gemma 3 1B', note: 'Q4_K_M · small, many languages', url: 'hf://bartowski/google_gemma-3-1b-it-GGUF/google_gemma-3-1b-it-Q4_K_M.gguf', size: 0.81 * GB, gpu: 0.86 * GB },
  { id: 'gemma3-4b', name: 'Gemma 3 4B', note: 'Q4_K_M · many languages', url: 'hf://bartowski/google_gemma-3-4b-it-GGUF/google_gemma-3-4b-it-Q4_K_M.gguf', size: 2.49 * GB, gpu: 2.82 * GB },
];

// ---------------------------------------------------------------------------- network policy
// index.html's Content-Security-Policy keeps scripts, styles and workers to this origin. Here,
// before anything else runs, the page narrows `connect-src` to this origin plus the host of the
// model the user chose (a second policy can only narrow the first), so nothing on the page can
// send a byte anywhere else. The engine is one worker shared by every tab of the page, which no
// page's policy governs: it is given the same list (`connectSrc`) and refuses any other host,
// and tabs under different lists get different engines. Choosing a model on another host
// reloads the page under a policy for that host.
const HF_HOSTS = ['https://huggingface.co', 'https://*.huggingface.co', 'https://*.hf.co']; // hf:// downloads are redirected to its CDNs

/** Origins a model address needs to be allowed; [] for this origin, files and bad addresses. */
function hostsFor(source) {
  if (typeof source !== 'string') return [];
  if (source.startsWith('hf://')) return HF_HOSTS;
  let url;
  try { url = new URL(source, location.href); } catch { return []; }
  if (!/^https?:$/.test(url.protocol) || url.origin === location.origin) return [];
  return url.hostname === 'huggingface.co' ? HF_HOSTS : [url.origin];
}

const startParams = new URLSearchParams(location.search);
const chosenModel = startParams.get('model') ? { source: startParams.get('model'), label: startParams.get('label') || startParams.get('model') } : null;
const lastModel = JSON.parse(localStorage.getItem('hearth:last-model') ?? 'null');
const allowedHosts = hostsFor((chosenModel ?? lastModel)?.source);
document.head.append(Object.assign(document.createElement('meta'), { httpEquiv: 'Content-Security-Policy', content: `connect-src 'self' ${allowedHosts.join(' ')}`.trim() }));
const reachable = (source) => hostsFor(source).every((host) => allowedHosts.includes(host));

const $ = (id) => document.getElementById(id);
const ui = {
  panel: $('panel'), togglePanel: $('toggle-panel'), webgpu: $('webgpu-status'), presets: $('presets'), presetForm: $('preset-form'),
  chatList: $('chat-list'), startBuiltin: $('start-builtin'), emptyHelp: $('empty-help'), deleteAll: $('delete-all'),
  customUrl: $('custom-url'), loadButton: $('load-button'), drop: $('drop-zone'), fileInput: $('file-input'),
  progress: $('progress'), phase: $('progress-phase'), figures: $('progress-figures'), bar: $('progress-bar'), cancel: $('cancel-load'),
  modelStatus: $('model-status'), system: $('system-prompt'), temperature: $('temperature'), topP: $('top-p'), maxTokens: $('max-tokens'),
  storage: $('storage-status'), cacheList: $('cache-list'), persist: $('persist-button'),
  messages: $('messages'), empty: $('empty-state'), error: $('error'), composer: $('composer'), prompt: $('prompt'),
  send: $('send'), stop: $('stop'), newChat: $('new-chat'),
};

// `conversation`: the open one ({ id, title, messages, … } as conversations.js keeps it), null
// for a new chat not yet saved (it is saved with its first message).
const state = { engine: null, loading: null, conversation: null, generating: null, modelLabel: '', modelSource: null, takeOver: null };
let gpuReady = false;

function formatBytes(n) {
  if (!Number.isFinite(n)) return '?';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
  return `${n.toFixed(n >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
}

function formatDuration(s) {
  if (!Number.isFinite(s) || s < 0) return '';
  if (s < 60) return `${Math.ceil(s)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function showError(message) {
  ui.error.textContent = message;
  ui.error.hidden = !message;
}

// ---------------------------------------------------------------------------- model picker

function renderPresets() {
  ui.presets.replaceChildren(...PRESETS.map((p) => {
    const li = document.createElement('li');
    const button = Object.assign(document.createElement('button'), { type: 'button', className: 'preset' });
    button.dataset.preset = p.id;
    const name = Object.assign(document.createElement('span'), { className: 'name', textContent: p.name });
    if (p.badge) name.append(Object.assign(document.createElement('span'), { className: 'badge', textContent: p.badge }));
    const meta = Object.assign(document.createElement('span'), { className: 'meta', textContent: `${p.note} · ${formatBytes(p.size)} download · ~${formatBytes(p.gpu)} GPU memory` });
    button.append(name, meta);
    button.addEventListener('click', () => loadModel(p.url, p.name));
    li.append(button);
    return li;
  }));
  markLoadedPreset();
}

/** Shows which preset is loaded (and says so to screen readers). */
function markLoadedPreset() {
  for (const button of ui.presets.querySelectorAll('button')) {
    const preset = PRESETS.find((p) => p.id === button.dataset.preset);
    if (preset.url === state.modelSource && state.engine) button.setAttribute('aria-current', 'true');
    else button.removeAttribute('aria-current');
  }
}

/** The empty chat: the page's own model in one click while none is loaded. */
function renderEmptyState() {
  const builtin = PRESETS[0];
  const offer = !state.engine && !state.loading && gpuReady;
  ui.startBuiltin.hidden = !offer;
  ui.startBuiltin.textContent = `Start with ${builtin.name} (${formatBytes(builtin.size)}, served by this page)`;
  ui.emptyHelp.textContent = state.engine
    ? `${state.modelLabel} is ready. Ask anything; the conversation stays in this browser.`
    : 'Models download once into this browser and work offline afterwards; your conversations never leave this device. Pick a larger model in the panel for real answers.';
}

function setBusy(busy) {
  ui.loadButton.disabled = busy;
  for (const button of ui.presets.querySelectorAll('button')) button.disabled = busy;
  ui.drop.setAttribute('aria-disabled', String(busy));
  ui.progress.hidden = !busy;
}

function showProgress(p) {
  const names = { download: 'Downloading', verify: 'Checking the download', upload: 'Loading onto the GPU' };
  ui.phase.textContent = names[p.phase] ?? p.phase;
  const fraction = p.total ? p.loaded / p.total : 0;
  ui.bar.value = fraction;
  let figures = p.total ? `${formatBytes(p.loaded)} / ${formatBytes(p.total)}` : formatBytes(p.loaded);
  if (p.bytesPerSecond > 0) {
    figures += ` · ${formatBytes(p.bytesPerSecond)}/s`;
    if (p.total) figures += ` · ${formatDuration((p.total - p.loaded) / p.bytesPerSecond)} left`;
  }
  ui.figures.textContent = figures;
}

/** The status line with a button after it (the engine held by another tab). */
function statusWithAction(text, action, onClick) {
  ui.modelStatus.textContent = `${text} `;
  const button = document.createElement('button');
  button.type = 'button';
  button.className = 'ghost small';
  button.textContent = action;
  button.addEventListener('click', onClick, { once: true });
  ui.modelStatus.append(button);
}

async function loadModel(source, label, { takeOver = false } = {}) {
  if (state.loading) return;
  // A model on a host this page's policy does not allow (and not already cached): come back
  // under a policy that allows it, and load it then.
  if (!reachable(source) && !(await cache.has(source).catch(() => false))) {
    location.assign(`${location.pathname}?${new URLSearchParams({ model: source, label })}`);
    return;
  }
  showError('');
  if (state.generating) state.generating.abort();
  await state.engine?.unload();
  state.engine = null;
  setChatEnabled(false);
  const controller = new AbortController();
  state.loading = controller;
  setBusy(true);
  renderEmptyState();
  ui.modelStatus.textContent = `Preparing ${label}…`;
  delete ui.modelStatus.dataset.ready;
  showProgress({ phase: 'download', loaded: 0, total: 0, bytesPerSecond: 0 });
  try {
    const engine = await Engine.load(source, {
      // One engine for every tab of the page: a second tab gets the model without a second
      // copy on the GPU. Its downloads obey this page's list of hosts.
      shared: true,
      connectSrc: ["'self'", ...allowedHosts],
      signal: controller.signal,
      onProgress: showProgress,
      // Browsers without SharedWorker (Chrome on Android) keep one engine with a lock: this
      // tab waits for the tab that holds it, or takes it.
      takeOver,
      onWaiting: () => statusWithAction(
        `Another tab of this page has ${label} on the GPU; this tab waits until that tab closes.`,
        'Use it in this tab instead',
        () => { state.takeOver = { source, label }; controller.abort(); },
      ),
      onTakenOver: () => {
        state.engine = null;
        setChatEnabled(false);
        delete ui.modelStatus.dataset.ready;
        statusWithAction(`${label} moved to another tab of this page.`, 'Use it here again', () => loadModel(source, label, { takeOver: true }));
      },
      onDeviceLost: (e) => {
        state.engine = null;
        setChatEnabled(false);
        showError(`${e.message}. Pick the model again to reload it.`);
      },
    });
    state.engine = engine;
    state.modelLabel = label;
    state.modelSource = source;
    if (typeof source === 'string') localStorage.setItem('hearth:last-model', JSON.stringify({ source, label }));
    if (chosenModel) history.replaceState(null, '', location.pathname);
    const from = engine.reused ? 'shared with another tab of this page' : typeof source !== 'string' ? 'from your disk' : engine.networkBytes === 0 ? 'from this browser\'s cache' : `after downloading ${formatBytes(engine.networkBytes)}`;
    ui.modelStatus.textContent = `${label} is ready (${from}). Context: ${engine.info.contextLength} tokens.`;
    ui.modelStatus.dataset.ready = 'true';
    setChatEnabled(true);
    // On a narrow screen the panel would crowd the chat: fold it away once a model is ready.
    if (matchMedia('(max-width: 760px)').matches) {
      ui.panel.hidden = true;
      ui.togglePanel.setAttribute('aria-expanded', 'false');
    }
    ui.prompt.focus();
  } catch (e) {
    ui.modelStatus.textContent = '';
    if (!state.takeOver) showError(e.name === 'AbortError' ? 'Loading was cancelled. Load again to resume the download where it stopped.' : e.message);
  } finally {
    state.loading = null;
    setBusy(false);
    markLoadedPreset();
    renderEmptyState();
    refreshCache();
  }
  // "Use it in this tab instead": the wait was cancelled; now take the engine.
  const next = state.takeOver;
  state.takeOver = null;
  if (next) loadModel(next.source, next.label, { takeOver: true });
}

ui.presetForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const source = ui.customUrl.value.trim();
  if (!source) {
    showError('Type a model\'s address first, or pick one of the models above.');
    ui.customUrl.focus();
    return;
  }
  loadModel(source, source.split('/').pop());
});
ui.startBuiltin.addEventListener('click', () => loadModel(PRESETS[0].url, PRESETS[0].name));
ui.cancel.addEventListener('click', () => state.loading?.abort());

function loadFiles(files) {
  const ggufs = [...files].filter((f) => f.name.toLowerCase().endsWith('.gguf'));
  if (!ggufs.length) { showError('That is not a .gguf file. Hearth loads GGUF models (e.g. Phi-4-mini-instruct-Q4_K_M.gguf).'); return; }
  loadModel(ggufs.length === 1 ? ggufs[0] : ggufs, ggufs[0].name);
}
ui.drop.addEventListener('click', () => ui.fileInput.click());
ui.drop.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); ui.fileInput.click(); } });
ui.fileInput.addEventListener('change', () => { if (ui.fileInput.files.length) loadFiles(ui.fileInput.files); ui.fileInput.value = ''; });
ui.drop.addEventListener('dragover', (e) => { e.preventDefault(); ui.drop.classList.add('over'); });
ui.drop.addEventListener('dragleave', () => ui.drop.classList.remove('over'));
ui.drop.addEventListener('drop', (e) => { e.preventDefault(); ui.drop.classList.remove('over'); loadFiles(e.dataTransfer.files); });

ui.togglePanel.addEventListener('click', () => {
  ui.panel.hidden = !ui.panel.hidden;
  ui.togglePanel.setAttribute('aria-expanded', String(!ui.panel.hidden));
});

// ---------------------------------------------------------------------------- chat

function setChatEnabled(on) {
  ui.prompt.disabled = !on;
  ui.send.disabled = !on;
  ui.newChat.disabled = !on;
  ui.prompt.placeholder = on ? `Message ${state.modelLabel} (Enter to send, Shift+Enter for a new line)` : 'Load a model to start chatting';
}

function addMessage(role, text) {
  ui.empty.hidden = true;
  const box = document.createElement('div');
  box.className = `message ${role}`;
  const content = document.createElement('div');
  content.className = 'content';
  if (role === 'user') content.textContent = text;
  else renderMarkdown(text, content);
  box.append(content);
  ui.messages.append(box);
  ui.messages.scrollTop = ui.messages.scrollHeight;
  return { box, content };
}

function addFooter(box, text, stats, finish) {
  const footer = document.createElement('div');
  footer.className = 'footer';
  const figures = document.createElement('span');
  figures.className = 'stats';
  const parts = [];
  if (stats) {
    parts.push(`${stats.generatedTokens} tokens`, `${stats.decodeTokensPerS.toFixed(stats.decodeTokensPerS < 10 ? 2 : 1)} tokens/s`, `first token after ${(stats.timeToFirstTokenMs / 1000).toFixed(2)} s`);
    // What the KV cache still held of this conversation, so was not prefilled again.
    if (stats.promptTokens) parts.push(`${stats.reusedTokens} of ${stats.promptTokens} prompt tokens from the cache`);
  }
  if (finish === 'abort') parts.push('stopped');
  if (finish === 'length') parts.push('hit the token limit');
  figures.textContent = parts.join(' · ');
  const copy = Object.assign(document.createElement('button'), { type: 'button', className: 'ghost small', textContent: 'Copy' });
  copy.setAttribute('aria-label', 'Copy this reply');
  copy.addEventListener('click', async () => {
    try { await navigator.clipboard.writeText(text); copy.textContent = 'Copied'; } catch { copy.textContent = 'Copy failed'; }
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
  });
  footer.append(figures, copy);
  box.append(footer);
}

/** Shows `conversation`'s messages (none for a new chat). */
function renderConversation() {
  ui.messages.replaceChildren(ui.empty);
  const messages = state.conversation?.messages ?? [];
  ui.empty.hidden = messages.length > 0;
  for (const m of messages) {
    const { box } = addMessage(m.role, m.content);
    if (m.role === 'assistant') addFooter(box, m.content, m.stats, m.finish);
  }
  renderChatList();
}

/** The conversations, newest first: open, rename, delete. */
async function renderChatList() {
  let all;
  try {
    all = await chats.listConversations();
  } catch (e) {
    ui.chatList.replaceChildren(Object.assign(document.createElement('li'), { className: 'note', textContent: `Conversations cannot be kept here: ${e.message}` }));
    return;
  }
  if (!all.length) {
    ui.chatList.replaceChildren(Object.assign(document.createElement('li'), { className: 'note', textContent: 'None yet: your first message starts one.' }));
    return;
  }
  ui.chatList.replaceChildren(...all.map((c) => {
    const li = document.createElement('li');
    const open = Object.assign(document.createElement('button'), { type: 'button', className: 'chat-title', textContent: c.title });
    if (c.id === state.conversation?.id) open.setAttribute('aria-current', 'true');
    open.addEventListener('click', () => openConversation(c.id));
    const rename = Object.assign(document.createElement('button'), { type: 'button', className: 'ghost small', textContent: 'Rename' });
    rename.setAttribute('aria-label', `Rename “${c.title}”`);
    rename.addEventListener('click', () => startRename(li, c));
    const del = Object.assign(document.createElement('button'), { type: 'button', className: 'ghost small', textContent: 'Delete' });
    del.setAttribute('aria-label', `Delete “${c.title}”`);
    del.addEventListener('click', async () => {
      await chats.deleteConversation(c.id);
      if (state.conversation?.id === c.id) startNewChat();
      else renderChatList();
    });
    li.append(open, rename, del);
    return li;
  }));
}

/** Renames in place: Enter keeps the new title, Escape the old one. */
function startRename(li, conversation) {
  const input = Object.assign(document.createElement('input'), { type: 'text', value: conversation.title, className: 'rename' });
  input.setAttribute('aria-label', 'New title');
  const finish = async (keep) => {
    input.removeEventListener('blur', onBlur);
    if (keep) {
      const renamed = await chats.renameConversation(conversation.id, input.value);
      if (renamed && state.conversation?.id === renamed.id) state.conversation.title = renamed.title;
    }
    await renderChatList();
    ui.chatList.querySelector('[aria-current="true"]')?.focus();
  };
  const onBlur = () => finish(true);
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') { e.preventDefault(); finish(true); }
    if (e.key === 'Escape') { e.preventDefault(); finish(false); }
  });
  input.addEventListener('blur', onBlur);
  li.replaceChildren(input);
  input.focus();
  input.select();
}

async function openConversation(id) {
  if (state.generating) state.generating.abort();
  const conversation = await chats.getConversation(id);
  if (!conversation) { renderChatList(); return; }
  state.conversation = conversation;
  sessionStorage.setItem('hearth:open-chat', id);
  renderConversation();
  // On a narrow screen the chat is what the user came for.
  if (matchMedia('(max-width: 760px)').matches) {
    ui.panel.hidden = true;
    ui.togglePanel.setAttribute('aria-expanded', 'false');
  }
  if (!ui.prompt.disabled) ui.prompt.focus();
}

function startNewChat() {
  state.generating?.abort();
  state.conversation = null;
  sessionStorage.removeItem('hearth:open-chat');
  renderConversation();
  if (!ui.prompt.disabled) ui.prompt.focus();
}

/** Saves the open conversation; a failure to save is said, never silent. */
async function persist() {
  try {
    await chats.saveConversation(state.conversation);
    sessionStorage.setItem('hearth:open-chat', state.conversation.id);
  } catch (e) {
    showError(`This conversation could not be saved in the browser (${e.message}); it stays on screen until you leave the page.`);
  }
  renderChatList();
}

async function send(text) {
  const engine = state.engine;
  if (!engine || state.generating || !text.trim()) return;
  showError('');
  if (state.conversation) {
    // Another tab may have added to this conversation since it was opened here.
    const stored = await chats.getConversation(state.conversation.id).catch(() => null);
    if (stored && stored.messages.length !== state.conversation.messages.length) {
      state.conversation = stored;
      renderConversation();
    }
  }
  state.conversation ??= chats.newConversation(text);
  const conversation = state.conversation;
  conversation.messages.push({ role: 'user', content: text });
  await persist();
  addMessage('user', text);
  const { box, content } = addMessage('assistant', '');
  box.classList.add('streaming');
  const controller = new AbortController();
  state.generating = controller;
  ui.send.hidden = true;
  ui.stop.hidden = false;
  ui.stop.focus();
  const system = ui.system.value.trim();
  const history = conversation.messages.map(({ role, content: c }) => ({ role, content: c }));
  const messages = system ? [{ role: 'system', content: system }, ...history] : history;
  let reply = '';
  let last = null;
  try {
    const stream = await engine.chat.completions.create({
      messages, stream: true, signal: controller.signal,
      temperature: Number(ui.temperature.value), top_p: Number(ui.topP.value), max_tokens: Number(ui.maxTokens.value) || 1024,
    });
    for await (const chunk of stream) {
      const piece = chunk.choices[0].delta.content;
      if (piece) {
        reply += piece;
        renderMarkdown(reply, content);
        ui.messages.scrollTop = ui.messages.scrollHeight;
      }
      last = chunk;
    }
    const stats = last?.hearth ?? null;
    const finish = last?.choices[0].finish_reason ?? null;
    conversation.messages.push({ role: 'assistant', content: reply, stats, finish });
    if (state.conversation === conversation) addFooter(box, reply, stats, finish);
    await persist();
  } catch (e) {
    if (e.code === 'model-replaced') {
      state.engine = null;
      state.modelSource = null;
      setChatEnabled(false);
      markLoadedPreset();
      renderEmptyState();
      ui.modelStatus.textContent = '';
      delete ui.modelStatus.dataset.ready;
      showError('Another tab of this page loaded a different model. Pick a model to go on.');
    } else {
      showError(e.message);
    }
    if (!reply && state.conversation === conversation) {
      // Nothing came back: the message goes back to the composer, not into the conversation.
      conversation.messages.pop();
      if (conversation.messages.length) await persist();
      else { await chats.deleteConversation(conversation.id).catch(() => {}); state.conversation = null; }
      renderConversation();
      ui.prompt.value = text;
    }
  } finally {
    box.classList.remove('streaming');
    state.generating = null;
    ui.stop.hidden = true;
    ui.send.hidden = false;
    ui.prompt.focus();
  }
}

ui.composer.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.prompt.value;
  ui.prompt.value = '';
  send(text);
});
ui.prompt.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) { e.preventDefault(); ui.composer.requestSubmit(); }
});
ui.stop.addEventListener('click', () => state.generating?.abort());
ui.newChat.addEventListener('click', startNewChat);

for (const [input, output] of [[ui.temperature, $('temperature-value')], [ui.topP, $('top-p-value')]]) {
  const show = () => { output.textContent = Number(input.value).toFixed(2); };
  input.addEventListener('input', show);
  show();
}
for (const el of [ui.system, ui.temperature, ui.topP, ui.maxTokens]) {
  const key = `hearth:setting:${el.id}`;
  if (localStorage.getItem(key) !== null) el.value = localStorage.getItem(key);
  el.addEventListener('change', () => localStorage.setItem(key, el.value));
}

// ---------------------------------------------------------------------------- cache manager

async function refreshCache() {
  try {
    const [models, estimate] = await Promise.all([cache.list(), cache.estimate()]);
    ui.storage.textContent = estimate.quota ? `Using ${formatBytes(estimate.usage)} of ${formatBytes(estimate.quota)} available to this site${estimate.persisted ? ' · kept even when storage is low' : ''}.` : '';
    ui.persist.hidden = estimate.persisted;
    if (!models.length) {
      ui.cacheList.replaceChildren(Object.assign(document.createElement('li'), { textContent: 'None yet.' }));
      return;
    }
    ui.cacheList.replaceChildren(...models.map((m) => {
      const li = document.createElement('li');
      const name = Object.assign(document.createElement('span'), { className: 'cache-name', textContent: decodeURIComponent(m.url.split('/').pop()) });
      const size = Object.assign(document.createElement('span'), { textContent: m.complete ? formatBytes(m.size) : `${formatBytes(m.storedBytes)} of ${formatBytes(m.size)} (partial)` });
      const load = Object.assign(document.createElement('button'), { type: 'button', className: 'small', textContent: m.complete ? 'Load' : 'Resume' });
      load.addEventListener('click', () => loadModel(m.url, decodeURIComponent(m.url.split('/').pop())));
      const del = Object.assign(document.createElement('button'), { type: 'button', className: 'ghost small', textContent: 'Delete' });
      del.setAttribute('aria-label', `Delete ${name.textContent}`);
      del.addEventListener('click', async () => { await cache.delete(m.url); refreshCache(); });
      li.append(name, size, load, del);
      return li;
    }));
  } catch (e) {
    ui.storage.textContent = e.message;
  }
}

ui.deleteAll.addEventListener('click', async () => {
  if (!confirm('Delete every conversation and every downloaded model from this browser? This cannot be undone.')) return;
  state.loading?.abort();
  state.generating?.abort();
  await state.engine?.unload();
  state.engine = null;
  setChatEnabled(false);
  try {
    await chats.deleteAllConversations();
    for (const m of await cache.list()) await cache.delete(m.url);
    for (const storage of [localStorage, sessionStorage]) {
      for (const key of Object.keys(storage)) if (key.startsWith('hearth:')) storage.removeItem(key);
    }
    ui.modelStatus.textContent = 'Everything Hearth kept in this browser is deleted.';
    delete ui.modelStatus.dataset.ready;
  } catch (e) {
    showError(`Not everything could be deleted: ${e.message}`);
  }
  state.conversation = null;
  state.modelSource = null;
  renderConversation();
  markLoadedPreset();
  renderEmptyState();
  refreshCache();
});

ui.persist.addEventListener('click', async () => {
  const granted = await cache.persist();
  ui.storage.textContent = granted ? 'The browser will keep downloaded models.' : 'The browser declined (it may grant this after you install the app or use it more).';
  refreshCache();
});

// ---------------------------------------------------------------------------- start

async function checkWebGPU() {
  if (!hasWebGPU()) {
    ui.webgpu.textContent = 'This browser has no WebGPU, which Hearth needs. Use a recent Chrome or Edge (desktop or Android), Safari 26+, or Firefox 141+ on Windows; on Linux Chrome may need chrome://flags/#enable-unsafe-webgpu.';
    ui.webgpu.className = 'note warn';
    return false;
  }
  const adapter = await navigator.gpu.requestAdapter().catch(() => null);
  if (!adapter) {
    ui.webgpu.textContent = 'WebGPU is present but found no usable GPU. Update your graphics driver, enable hardware acceleration in the browser settings, or try another browser.';
    ui.webgpu.className = 'note warn';
    return false;
  }
  const info = adapter.info ?? {};
  ui.webgpu.textContent = `GPU: ${[info.vendor, info.architecture, info.description].filter(Boolean).join(' ') || 'available'} · largest buffer ${formatBytes(adapter.limits.maxBufferSize)}`;
  return true;
}

renderPresets();
refreshCache();
if ('serviceWorker' in navigator) {
  navigator.serviceWorker.register('sw.js').catch(() => {});
}
// The conversation this tab had open before a reload (each tab keeps its own), as it was.
const openChat = sessionStorage.getItem('hearth:open-chat');
state.conversation = openChat ? ((await chats.getConversation(openChat).catch(() => null)) ?? null) : null;
renderConversation();
const gpuOk = await checkWebGPU();
gpuReady = gpuOk;
ui.loadButton.disabled = !gpuOk;
renderEmptyState();
document.body.dataset.ready = 'true';
if (gpuOk && chosenModel) {
  loadModel(chosenModel.source, chosenModel.label);
} else if (gpuOk && lastModel && (await cache.has(lastModel.source).catch(() => false))) {
  // Come back to the last model when it is fully cached: works offline, with no request.
  loadModel(lastModel.source, lastModel.label);
}
