// Structured output and tool calls in headless Chromium, through the JS API and its
// OpenAI-style chat.completions. Random-weight fixtures never write valid JSON by chance: at
// temperature 1, over several seeds, what they write under a schema must validate — checked
// here in Node by Ajv, not by the engine that enforced it. SmolLM2 shows the same on a real
// model: a JSON extraction and a whole tool-call round trip.
//
// Run: node --test tests/browser/structured.test.mjs  (after scripts/build-web.sh)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import Ajv from 'ajv';
import { startServer, ROOT } from './server.mjs';
import { launch, harness, fixture } from './browser.mjs';

const Q8 = '/tests/fixtures/tiny-q8_0.gguf';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await server?.close();
});

async function freshPage() {
  const context = await browser.newContext();
  return harness(context, server);
}

/** Objects in an array, enums, a pattern, number ranges, a nullable field, a $ref. */
const PEOPLE = {
  type: 'object',
  properties: {
    people: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          name: { type: 'string', pattern: '^[A-Z][a-z]{1,8}$' },
          age: { type: 'integer', minimum: 0, maximum: 120 },
          role: { enum: ['admin', 'user', 'guest'] },
          score: { type: 'number', minimum: -1, maximum: 1 },
          email: { type: ['string', 'null'], maxLength: 12 },
        },
        required: ['name', 'age', 'role', 'score', 'email'],
        additionalProperties: false,
      },
      minItems: 1,
      maxItems: 3,
    },
    active: { type: 'boolean' },
    id: { $ref: '#/$defs/id' },
  },
  required: ['people', 'active', 'id'],
  additionalProperties: false,
  $defs: { id: { type: 'string', pattern: '^[0-9]{4}-[a-f]{2}$' } },
};

const WEATHER = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The current weather in a city',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string', maxLength: 20 }, unit: { enum: ['celsius', 'fahrenheit'] } },
      required: ['city', 'unit'],
      additionalProperties: false,
    },
  },
};

const ADD = {
  type: 'function',
  function: {
    name: 'add',
    parameters: {
      type: 'object',
      properties: { a: { type: 'integer' }, b: { type: 'integer' } },
      required: ['a', 'b'],
      additionalProperties: false,
    },
  },
};

const ajv = new Ajv({ allErrors: true });

/** Ajv's complaints about `text` under `schema`, or a parse error; empty when it is valid. */
function problems(schema, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return [`not JSON: ${e.message}`];
  }
  const validate = ajv.compile(schema);
  return validate(value) ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`);
}

test('replies held to a JSON schema validate at temperature 1, by generate and by chat.completions', async () => {
  const page = await freshPage();
  const out = await page.evaluate(async ({ url, schema }) => {
    const engine = await window.hearth.Engine.load(url);
    const replies = [];
    for (const seed of [1, 2, 3]) {
      const g = await engine.generate({ prompt: 'Hello: ', maxTokens: 600, temperature: 1, topK: 0, topP: 1, minP: 0, seed, responseFormat: { type: 'json_schema', schema } });
      replies.push({ text: g.text, finishReason: g.finishReason });
    }
    const completion = await engine.chat.completions.create({
      messages: [{ role: 'user', content: 'people?' }],
      response_format: { type: 'json_schema', json_schema: { name: 'people', schema } },
      temperature: 1, seed: 4, max_tokens: 600,
    });
    const object = await engine.generate({ prompt: 'Hello: ', maxTokens: 300, temperature: 1, seed: 5, responseFormat: { type: 'json_object' } });
    const regex = await engine.generate({ prompt: 'Hello: ', maxTokens: 50, temperature: 1, seed: 6, responseFormat: { type: 'regex', pattern: '[0-9]{3}-(red|green)-[a-z]{2,4}' } });
    const lark = await engine.generate({ prompt: 'Hello: ', maxTokens: 50, temperature: 1, seed: 7, responseFormat: { type: 'grammar', lark: 'start: ("hi" | "hello") " " NAME "!"\nNAME: /[A-Z][a-z]{1,8}/' } });
    await engine.unload();
    return { replies, completion, object: object.text, regex: regex.text, lark: lark.text };
  }, { url: server.url + Q8, schema: PEOPLE });
  for (const [i, r] of out.replies.entries()) {
    assert.equal(r.finishReason, 'stop', `seed ${i + 1}: ${r.text}`);
    assert.deepEqual(problems(PEOPLE, r.text), [], `seed ${i + 1}: ${r.text}`);
  }
  assert.equal(new Set(out.replies.map((r) => r.text)).size, 3, 'seeds give different replies');
  const message = out.completion.choices[0].message;
  assert.equal(out.completion.choices[0].finish_reason, 'stop');
  assert.deepEqual(problems(PEOPLE, message.content), [], message.content);
  assert.equal(typeof JSON.parse(out.object), 'object', out.object);
  assert.ok(!Array.isArray(JSON.parse(out.object)) && JSON.parse(out.object) !== null, out.object);
  assert.match(out.regex, /^[0-9]{3}-(red|green)-[a-z]{2,4}$/);
  assert.match(out.lark, /^(hi|hello) [A-Z][a-z]{1,8}!$/);
  await page.context().close();
});

test('tool calls name an offered tool, their arguments validate, and they stream as tool_calls deltas', async () => {
  const page = await freshPage();
  const out = await page.evaluate(async ({ url, tools }) => {
    const engine = await window.hearth.Engine.load(url);
    const messages = [{ role: 'user', content: 'What is the weather in Oslo?' }];
    const required = [];
    for (const seed of [1, 2, 3]) {
      const c = await engine.chat.completions.create({ messages, tools, tool_choice: 'required', temperature: 1, seed, max_tokens: 300 });
      required.push(c.choices[0]);
    }
    const named = await engine.chat.completions.create({ messages, tools, tool_choice: { type: 'function', function: { name: 'add' } }, temperature: 1, seed: 9, max_tokens: 300 });
    const chunks = [];
    for await (const c of await engine.chat.completions.create({ messages, tools, tool_choice: 'required', temperature: 1, seed: 1, max_tokens: 300, stream: true })) chunks.push(c);
    const none = await engine.chat.completions.create({ messages, tools, tool_choice: 'none', temperature: 0, max_tokens: 8 });
    await engine.unload();
    return { required, named: named.choices[0], chunks, none: none.choices[0] };
  }, { url: server.url + Q8, tools: [WEATHER, ADD] });
  const parameters = Object.fromEntries([WEATHER, ADD].map((t) => [t.function.name, t.function.parameters]));
  const checkCalls = (choice, only) => {
    assert.equal(choice.finish_reason, 'tool_calls', JSON.stringify(choice));
    assert.ok(choice.message.tool_calls.length >= 1);
    for (const [i, call] of choice.message.tool_calls.entries()) {
      assert.equal(call.type, 'function');
      assert.equal(call.id, `call_${i}`);
      assert.ok(call.function.name in parameters, call.function.name);
      if (only) assert.equal(call.function.name, only);
      assert.equal(typeof call.function.arguments, 'string', 'arguments are JSON text, as OpenAI gives them');
      assert.deepEqual(problems(parameters[call.function.name], call.function.arguments), [], call.function.arguments);
    }
  };
  for (const choice of out.required) checkCalls(choice);
  checkCalls(out.named, 'add');
  // Streamed: no call text among the content deltas; the calls come as tool_calls deltas.
  const content = out.chunks.map((c) => c.choices[0].delta.content ?? '').join('');
  assert.equal(content, '');
  const deltas = out.chunks.flatMap((c) => c.choices[0].delta.tool_calls ?? []);
  assert.deepEqual(deltas.map(({ index, ...call }) => call), out.required[0].message.tool_calls, 'the same calls as unstreamed with the same seed');
  assert.deepEqual(deltas.map((d) => d.index), deltas.map((_, i) => i));
  assert.equal(out.chunks.at(-1).choices[0].finish_reason, 'tool_calls');
  // tool_choice 'none': text, no calls.
  assert.equal(out.none.message.tool_calls, undefined);
  assert.notEqual(out.none.finish_reason, 'tool_calls');
  await page.context().close();
});

test('formats and tools that cannot be used are bad requests, and the engine goes on', async () => {
  const page = await freshPage();
  const ref = fixture('tiny-q8_0.json').greedy;
  const out = await page.evaluate(async ({ url, ref, weather }) => {
    const engine = await window.hearth.Engine.load(url);
    const fail = (request) => engine.generate(request).then((g) => ({ accepted: g.text }), (e) => ({ code: e.code, message: e.message }));
    const prompt = 'Hello: ';
    const results = {
      unsupportedKeyword: await fail({ prompt, responseFormat: { type: 'json_schema', schema: { type: 'array', uniqueItems: true } } }),
      badType: await fail({ prompt, responseFormat: { type: 'json_schema', schema: { type: 'strng' } } }),
      badRegex: await fail({ prompt, responseFormat: { type: 'regex', pattern: '(unclosed' } }),
      badGrammar: await fail({ prompt, responseFormat: { type: 'grammar', lark: 'start: "x" ( y' } }),
      deepSchema: await fail({ prompt, responseFormat: { type: 'json_schema', schema: Array.from({ length: 5000 }).reduce((items) => ({ type: 'array', items }), { type: 'integer' }) } }),
      hugeGrammar: await fail({ prompt, responseFormat: { type: 'grammar', lark: `start: "a"\n${'// a comment a megabyte long\n'.repeat(40_000)}` } }),
      unknownFormat: await fail({ prompt, responseFormat: { type: 'xml' } }),
      namelessTool: await fail({ messages: [{ role: 'user', content: 'hi' }], tools: [{ type: 'function', function: { description: 'no name' } }] }),
      unknownChoice: await fail({ messages: [{ role: 'user', content: 'hi' }], tools: [weather], toolChoice: { type: 'function', function: { name: 'nope' } } }),
      toolsWithPrompt: await fail({ prompt, tools: [weather] }),
      toolsAndFormat: await fail({ messages: [{ role: 'user', content: 'hi' }], tools: [weather], responseFormat: { type: 'json_object' } }),
      openAiFormat: await engine.chat.completions.create({ messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'yaml' } }).then(() => null, (e) => ({ code: e.code, message: e.message })),
    };
    const after = await engine.generate({ tokens: ref.prompt, maxTokens: ref.tokens.length, temperature: 0, ignoreEos: true });
    await engine.unload();
    return { results, after: after.tokens };
  }, { url: server.url + Q8, ref, weather: WEATHER });
  const expect = {
    unsupportedKeyword: /uniqueItems/,
    badType: /strng/,
    badRegex: /regular expression/,
    badGrammar: /grammar/,
    deepSchema: /nests deeper than 100 levels/,
    hugeGrammar: /at most 1048576 are accepted/,
    unknownFormat: /responseFormat\.type must be one of/,
    namelessTool: /tool 0 needs a name/,
    unknownChoice: /no tool is named 'nope'/,
    toolsWithPrompt: /tools need messages/,
    toolsAndFormat: /tools or a response format, not both/,
    openAiFormat: /response_format\.type must be/,
  };
  for (const [name, pattern] of Object.entries(expect)) {
    const r = out.results[name];
    assert.equal(r.code, 'bad-request', `${name}: ${JSON.stringify(r)}`);
    assert.match(r.message, pattern, name);
  }
  assert.deepEqual(out.after, ref.tokens, 'the engine still answers exactly as before');
  await page.context().close();
});

test('SmolLM2 extracts JSON and goes round tool calls, forced and by its own choice, over one cached conversation', async () => {
  const ref = fixture('smollm2/reference.json');
  const modelPath = `/models/${ref.model}`;
  assert.ok(fs.existsSync(path.join(ROOT, modelPath.slice(1))), 'run scripts/fetch-default-model.sh');
  const page = await freshPage();
  const city = {
    type: 'object',
    properties: { city: { type: 'string' }, country: { type: 'string' }, population_millions: { type: 'number' } },
    required: ['city', 'country', 'population_millions'],
    additionalProperties: false,
  };
  const weather = { type: 'function', function: { name: 'get_weather', description: 'Current weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } } };
  const out = await page.evaluate(async ({ url, city, weather }) => {
    const engine = await window.hearth.Engine.load(url, { contextLength: 512 });
    const extracted = await engine.chat.completions.create({
      messages: [{ role: 'user', content: 'Paris is the capital of France, home to about 2.1 million people. Extract the city.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'city', schema: city } },
      temperature: 0, max_tokens: 60,
    });
    const messages = [{ role: 'user', content: 'What is the weather in Paris?' }];
    const turns = [];
    const ask = async (toolChoice) => {
      const options = { messages, tools: [weather], temperature: 0, max_tokens: 60 };
      options.tool_choice = toolChoice;
      const c = await engine.chat.completions.create(options);
      turns.push({ choice: c.choices[0], cached: c.usage.prompt_tokens_details.cached_tokens, prompt: c.usage.prompt_tokens });
      messages.push(c.choices[0].message);
      return c.choices[0].message;
    };
    const answerCall = (call, content) => messages.push({ role: 'tool', tool_call_id: call?.id, content });
    // A forced call, its result, the answer; then a question the model may answer by a call
    // ('auto', as every turn after the first), its result, and the final answer.
    answerCall((await ask('required')).tool_calls?.[0], 'sunny, 21 C');
    await ask('auto');
    messages.push({ role: 'user', content: 'What is the weather in Berlin?' });
    answerCall((await ask('auto')).tool_calls?.[0], 'rain, 12 C');
    await ask('auto');
    await engine.unload();
    return { extracted: extracted.choices[0], turns };
  }, { url: server.url + modelPath, city, weather });
  assert.equal(out.extracted.finish_reason, 'stop');
  assert.deepEqual(JSON.parse(out.extracted.message.content), { city: 'Paris', country: 'France', population_millions: 2.1 });
  const [forced, answer, auto, final] = out.turns;
  const calls = (turn) => turn.choice.message.tool_calls?.map((c) => [c.function.name, JSON.parse(c.function.arguments)]);
  assert.equal(forced.choice.finish_reason, 'tool_calls', JSON.stringify(forced));
  assert.deepEqual(calls(forced), [['get_weather', { city: 'Paris' }]]);
  assert.equal(auto.choice.finish_reason, 'tool_calls', JSON.stringify(auto));
  assert.deepEqual(calls(auto), [['get_weather', { city: 'Berlin' }]]);
  // Given each result, the model answers in text.
  for (const turn of [answer, final]) {
    assert.equal(turn.choice.finish_reason, 'stop', JSON.stringify(turn));
    assert.equal(turn.choice.message.tool_calls, undefined);
    assert.ok(turn.choice.message.content.length > 0);
  }
  // Every turn after the first prefills only what is new: the conversation so far stays cached.
  for (const [i, turn] of out.turns.entries()) {
    if (i > 0) assert.ok(turn.cached > 0 && turn.cached >= out.turns[i - 1].prompt, JSON.stringify(out.turns));
  }
  await page.context().close();
});
