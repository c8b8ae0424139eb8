// Types of Hearth's JS API (hearth.js): `import { Engine } from 'hearth-llm'`.

/**
 * An error Hearth explains: `code` says what kind, `message` what to do. Codes:
 * model files — `not-gguf`, `bad-model` (truncated, corrupt, missing or mis-shaped tensors),
 * `unsupported-model` (architecture, tensor type, GGUF version), `template`;
 * downloads — `http-<status>`, `network`, `bad-range`, `bad-length`, `blocked-by-policy`,
 * `bad-url`, `bad-source`, `changed`, `corrupt`; storage — `quota`, `storage`, `no-storage`;
 * device — `no-webgpu`, `out-of-memory`, `device-lost`, `gpu`, `unsupported`;
 * requests — `context-full`, `bad-token`, `bad-request`, `unloaded`; sharing — `model-replaced`,
 * `taken-over`; `worker`, `engine` otherwise.
 * An aborted call rejects with a DOMException named `AbortError`.
 */
export declare class HearthError extends Error {
  readonly name: 'HearthError';
  readonly code: string;
  constructor(message: string, code: string);
}

/** 'download': the upload to the GPU follows it chunk by chunk; 'upload': what is left of the
 *  upload, or all of it from the cache; 'verify': chunks the upload did not read, checked. */
export type LoadPhase = 'download' | 'verify' | 'upload';

export interface LoadProgress {
  phase: LoadPhase;
  /** Bytes done in this phase. */
  loaded: number;
  /** Bytes this phase will take (0 while unknown). */
  total: number;
  /** Recent speed in bytes per second. */
  bytesPerSecond: number;
}

export interface LoadOptions {
  onProgress?: (progress: LoadProgress) => void;
  signal?: AbortSignal;
  /**
   * Context window in tokens (default: the model's trained window, as much of it as the device
   * can bind and `gpuMemoryBytes` holds; the KV cache grows as the conversation does).
   */
  contextLength?: number;
  /** GPU memory the model may take; a model needing more is refused before download. */
  gpuMemoryBytes?: number;
  /** Bytes per cached chunk and per Range request (default 32 MiB). */
  chunkSize?: number;
  /** Where worker.js is (default: next to hearth.js). */
  workerUrl?: string | URL;
  /**
   * Run the worker under this page's Content-Security-Policy (spawned from a blob: URL that
   * imports worker.js; needs `worker-src blob:`), so that the policy's `connect-src` governs
   * the model download too. With a bundler, pass `workerUrl` as well.
   */
  inheritCsp?: boolean;
  /**
   * One engine for every page of this origin (a SharedWorker): a page loading the model
   * another page already has on the GPU gets it without reading or uploading anything, and
   * requests from all pages are answered in the order they came. Loading a different model
   * replaces it for every page (their calls then fail with code 'model-replaced'); `unload`
   * frees it once no page uses it; closing a page leaves the others working. Where the
   * browser has no SharedWorker (Chrome on Android), a Web Lock keeps one engine per browser
   * instead: a second page waits (`onWaiting`) until the page holding the engine unloads it or
   * closes, or with `takeOver` takes it, and that page's calls then fail with code
   * 'taken-over' (`onTakenOver`). Off by default; not with `inheritCsp`.
   */
  shared?: boolean;
  /** With `shared` where there is no SharedWorker: take the engine from the page holding it
   *  rather than wait for it. */
  takeOver?: boolean;
  /** With `shared` where there is no SharedWorker: another page holds the engine, and this
   *  load waits for it (abort it with `signal`, or load again with `takeOver`). */
  onWaiting?: () => void;
  /** Another page took the engine (`takeOver`): this one is stopped, its GPU memory freed. */
  onTakenOver?: () => void;
  /**
   * Origins the engine's worker may download from, as CSP source expressions (`'self'`,
   * `https://host`, `https://*.host`, `http://host:*`); a request anywhere else is refused
   * with code 'blocked-by-policy' before it leaves, and a redirect elsewhere as soon as it is
   * seen (its body unread). For a shared worker, which no page's Content-Security-Policy
   * governs. Pages with different lists never share.
   */
  connectSrc?: string[];
  /** Called when the GPU device is lost; load into a new engine to go on. */
  onDeviceLost?: (error: HearthError) => void;
  /**
   * The kernel set: 'auto' (default) runs kernels shaped for a CPU where WebGPU's adapter is a
   * software emulation (SwiftShader), the GPU kernels elsewhere; 'gpu' or 'cpu' force one,
   * for benchmarks and tests.
   */
  kernels?: 'auto' | 'gpu' | 'cpu';
}

/** Model source: http(s) URL, `hf://owner/repo/file.gguf`, a split model's first part, or files. */
export type ModelSource = string | URL | Blob | File | Blob[] | File[];

export interface ModelInfo {
  architecture: string;
  name: string | null;
  nLayer: number;
  nEmbd: number;
  nHead: number;
  nHeadKv: number;
  nVocab: number;
  trainedContextLength: number;
  contextLength: number;
  fileBytes: number;
  weightBytes: number;
  kvCacheBytes: number;
  activationBytes: number;
  gpuBytesNeeded: number;
  /** Weight bytes each decoded token reads (set once the model is loaded). */
  weightBytesPerToken?: number;
}

export interface AdapterInfo {
  name: string;
  backend: string;
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant' | 'tool' | string;
  content: string | null;
  /** An assistant turn's tool calls (as a reply returned them), to send back in the history. */
  toolCalls?: ToolCall[];
  /** On a 'tool' message: the call it answers. */
  toolCallId?: string;
}

/**
 * The shape a reply must have, enforced on every token: JSON valid against a JSON schema, any
 * JSON object, text a regular expression matches whole, or text in a Lark grammar
 * (llguidance's dialect). A schema keyword the engine does not support, a bad regular
 * expression or grammar is a `bad-request` error naming it.
 */
export type ResponseFormat =
  | { type: 'json_schema'; schema: object }
  | { type: 'json_object' }
  | { type: 'regex'; pattern: string }
  | { type: 'grammar'; lark: string };

/** A function the model may call (OpenAI's shape). */
export interface Tool {
  type: 'function';
  function: { name: string; description?: string; parameters?: object };
}

/** 'auto': text, or calls where the model opens one; 'required': calls only; a function: that call. */
export type ToolChoice = 'auto' | 'none' | 'required' | { type: 'function'; function: { name: string } };

/** A call the model made; `arguments` is JSON text valid against the function's parameters. */
export interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

export interface SamplingOptions {
  /** Tokens to generate at most (default 256). */
  maxTokens?: number;
  /** 0 is greedy (default 0.8). */
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  repeatPenalty?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  penaltyLastN?: number;
  /** Token id → bias added to its logit. */
  logitBias?: Record<number, number>;
  /** Same seed, same output. */
  seed?: number;
  /** Generation ends at these strings (not included in the text). */
  stop?: string | string[];
  /** Keep going past end-of-turn tokens. */
  ignoreEos?: boolean;
  /** The shape the reply must have (structured output). */
  responseFormat?: ResponseFormat;
  /** Functions the model may call (with `messages`). */
  tools?: Tool[];
  toolChoice?: ToolChoice;
}

export type GenerateOptions = SamplingOptions & {
  signal?: AbortSignal;
  onToken?: (piece: GeneratedPiece) => void;
} & ({ prompt: string } | { tokens: number[] } | { messages: ChatMessage[] });

export interface GeneratedPiece {
  /** Text this token completed (may be empty mid-character or while a stop string may form). */
  text: string;
  /** The token generated; absent on a last piece that flushes held-back text. */
  token?: number;
}

export type FinishReason = 'stop' | 'length' | 'context_full' | 'abort' | 'tool_calls';

export interface GenerateStats {
  promptTokens: number;
  reusedTokens: number;
  generatedTokens: number;
  timeToFirstTokenMs: number;
  decodeMs: number;
  prefillTokensPerS: number;
  decodeTokensPerS: number;
}

export interface GenerateResult {
  /** The reply; with tool calls, the text before them. */
  text: string;
  /** The calls the reply made, if any (then `finishReason` is 'tool_calls'). */
  toolCalls?: ToolCall[];
  /** The generated token ids only. */
  tokens: number[];
  finishReason: FinishReason;
  stats: GenerateStats | null;
}

export interface GenerateStream extends AsyncIterableIterator<GeneratedPiece> {
  result: Promise<GenerateResult>;
}

// OpenAI-shaped chat completions.
export interface ChatCompletionRequest {
  messages: Array<{
    role: string;
    content: string | null | Array<{ type: 'text'; text: string }>;
    tool_calls?: ToolCall[];
    tool_call_id?: string;
  }>;
  /** Structured output: `{ type: 'json_object' }` or `{ type: 'json_schema', json_schema: { name, schema, strict } }`. */
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name: string; schema: object; strict?: boolean } };
  tools?: Tool[];
  tool_choice?: ToolChoice;
  stream?: boolean;
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  top_k?: number;
  min_p?: number;
  repetition_penalty?: number;
  frequency_penalty?: number;
  presence_penalty?: number;
  seed?: number;
  stop?: string | string[];
  signal?: AbortSignal;
}

export type ChatFinishReason = 'stop' | 'length' | 'abort' | 'tool_calls';

export interface ChatCompletionUsage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** `cached_tokens`: prompt tokens whose keys and values were still in the cache (not prefilled again). */
  prompt_tokens_details: { cached_tokens: number };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: Array<{ index: number; message: { role: 'assistant'; content: string | null; tool_calls?: ToolCall[] }; finish_reason: ChatFinishReason }>;
  usage: ChatCompletionUsage;
  hearth: GenerateStats | null;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: Array<{ index: number; delta: { role?: 'assistant'; content?: string; tool_calls?: Array<ToolCall & { index: number }> }; finish_reason: ChatFinishReason | null }>;
  usage?: ChatCompletionUsage;
  hearth?: GenerateStats | null;
}

export interface ChatCompletions {
  create(request: ChatCompletionRequest & { stream: true }): Promise<AsyncIterableIterator<ChatCompletionChunk>>;
  create(request: ChatCompletionRequest & { stream?: false }): Promise<ChatCompletion>;
}

export declare class Engine {
  static load(source: ModelSource, options?: LoadOptions): Promise<Engine>;
  readonly info: ModelInfo;
  readonly adapter: AdapterInfo;
  /** Bytes this load fetched from the network (0 when everything came from the cache). */
  readonly networkBytes: number;
  /** Whether this engine is the one shared by this origin's pages (`shared: true`). */
  readonly shared: boolean;
  /** How it is shared: one SharedWorker for every page ('worker'); the Web Lock of a browser
   *  without SharedWorker, which this page holds ('lock'); or not at all ('none'). */
  readonly sharing: 'worker' | 'lock' | 'none';
  /** Whether the model was on the GPU already, loaded by another page (nothing was uploaded). */
  readonly reused: boolean;
  /** Where the load's time went, in seconds: starting wasm and the GPU device; the download
   *  until its last byte was stored (the upload runs beside it); waiting for the model's bytes
   *  (storage, checks, chunks still downloading); and the rest of the upload (parsing,
   *  repacking, writing to the GPU, compiling pipelines), of which, once every weight was
   *  queued, the wait for pipelines still compiling and for the GPU's last writes. Then the
   *  cache's chunks and how many times they were read back (each once). */
  readonly loadProfile: {
    engineS: number;
    downloadS: number;
    readS: number;
    uploadS: number;
    compileWaitS: number;
    gpuWaitS: number;
    storedChunks: number;
    storedChunkReads: number;
  };
  onDeviceLost: ((error: HearthError) => void) | null;
  readonly chat: { completions: ChatCompletions };
  generate(options: GenerateOptions): Promise<GenerateResult>;
  generateStream(options: GenerateOptions): GenerateStream;
  tokenize(text: string, options?: { special?: boolean }): Promise<number[]>;
  detokenize(tokens: ArrayLike<number>): Promise<string>;
  applyChatTemplate(messages: ChatMessage[], options?: { addGenerationPrompt?: boolean }): Promise<string>;
  resetChat(): Promise<void>;
  /**
   * Memory in use: wasm linear memory, the model's weights on the GPU, every buffer the engine
   * holds on the GPU now (weights, KV cache, activations), and the most it held since the model
   * began to load.
   */
  stats(): Promise<{ wasmMemoryBytes: number; modelBytesOnGpu: number; gpuBytes: number; peakGpuBytes: number }>;
  unload(): Promise<void>;
}

export interface CachedModel {
  url: string;
  size: number;
  storedBytes: number;
  complete: boolean;
  chunks: number;
  storedChunks: number;
  updatedAt: number;
}

export declare const cache: {
  list(): Promise<CachedModel[]>;
  has(source: string | URL): Promise<boolean>;
  delete(source: string | URL): Promise<void>;
  estimate(): Promise<{ usage: number | null; quota: number | null; persisted: boolean }>;
  persist(): Promise<boolean>;
};

export declare function resolveModelUrl(source: string): string;
export declare function modelPartUrls(url: string): string[];
export declare function hasWebGPU(): boolean;
