// The official `openai` npm client (v6 on Node 20) against a live server on loopback: chat and
// completions, streaming and not, models.list and models.retrieve, usage chunks, request ids (also
// in error bodies), errors as the SDK's typed errors, a mid-stream error event, and an aborted
// stream freeing its engine work.
//
// usage: node openai_test.mjs SERVER_COMMAND...   (AURORA_SERVER_CMD overrides, as in the C++ tests;
// with a real server, the assertions on the fake engine's exact text are skipped)
import { spawn } from 'node:child_process';
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import OpenAI from 'openai';

const command = process.env.AURORA_SERVER_CMD ? process.env.AURORA_SERVER_CMD.split(/\s+/) : process.argv.slice(2);
const fake = !process.env.AURORA_SERVER_CMD;
const apiKey = 'sk-node-test';
const WORDS = [' alpha', ' bravo', ' charlie', ' delta', ' echo', ' foxtrot', ' golf', ' hotel'];
const expected = (n) => Array.from({ length: n }, (_, i) => WORDS[i]).join('');

function startServer(args) {
  const child = spawn(command[0], [...command.slice(1), ...args, '--port', '0'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no port in: ' + log)), 20000);
    child.stderr.on('data', (d) => {
      log += d;
      const m = /listening on [^ ]*:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve({ child, port: Number(m[1]) });
      }
    });
    child.on('exit', (code) => reject(new Error(`server exited (${code}): ${log}`)));
  });
}

const args = fake ? ['--fake-step-ms', '2', '--api-key', apiKey] : ['--api-key', apiKey];
const { child, port } = await startServer(args);
after(() => child.kill('SIGKILL'));
// A real server listens before its model has loaded: wait for /health.
for (let i = 0; i < 600 && (await fetch(`http://127.0.0.1:${port}/health`).catch(() => ({ status: 0 }))).status !== 200; i++) {
  await new Promise((r) => setTimeout(r, 50));
}
const client = new OpenAI({ apiKey, baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0, timeout: 20000 });
const model = (await client.models.list()).data[0].id;

async function metric(name) {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { headers: { Authorization: `Bearer ${apiKey}` } })).text();
  return text.split('\n').filter((l) => l.startsWith(name)).reduce((s, l) => s + Number(l.split(' ').pop()), 0);
}

test('models.list shows the served model', async () => {
  const list = await client.models.list();
  assert.ok(list.data.length >= 1);
  assert.equal(list.data[0].object, 'model');
});

test('models.retrieve returns the model; an unknown id is a NotFoundError', async () => {
  const m = await client.models.retrieve(model);
  assert.equal(m.id, model);
  assert.equal(m.object, 'model');
  await assert.rejects(client.models.retrieve('no/such-model'), (e) => {
    assert.ok(e instanceof OpenAI.NotFoundError);
    assert.equal(e.code, 'model_not_found');
    // The error body names the request, as the x-request-id header does.
    assert.match(e.error.request_id, /^[0-9a-f]{32}$/);
    assert.equal(e.error.request_id, e.headers.get('x-request-id'));
    return true;
  });
});

test('chat, not streamed', async () => {
  const r = await client.chat.completions.create({ model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 5 });
  assert.equal(r.object, 'chat.completion');
  assert.equal(r.choices[0].message.role, 'assistant');
  assert.equal(r.choices[0].finish_reason, 'length');
  assert.equal(r.usage.completion_tokens, 5);
  if (fake) assert.equal(r.choices[0].message.content, expected(5));
});

test('logprobs: chat and completions, as the SDK types them', async () => {
  const r = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, logprobs: true, top_logprobs: 2,
  });
  const content = r.choices[0].logprobs.content;
  assert.equal(content.length, 3);
  assert.equal(content[0].top_logprobs.length, 2);
  assert.ok(content[0].logprob <= 0);
  assert.ok(content[0].top_logprobs[0].logprob >= content[0].top_logprobs[1].logprob);
  assert.deepEqual(content[0].bytes, [...Buffer.from(content[0].token, 'utf8')]);
  if (fake) assert.equal(content.map((t) => t.token).join(''), expected(3));

  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'hi' }], max_tokens: 3, logprobs: true, stream: true,
  });
  let entries = 0;
  for await (const chunk of stream) entries += chunk.choices[0]?.logprobs?.content?.length ?? 0;
  assert.equal(entries, 3);

  const c = await client.completions.create({ model, prompt: 'p', max_tokens: 2, logprobs: 3 });
  const lp = c.choices[0].logprobs;
  assert.equal(lp.tokens.length, 2);
  assert.equal(lp.token_logprobs.length, 2);
  assert.ok(Object.keys(lp.top_logprobs[0]).length >= 3);
  assert.deepEqual(lp.text_offset.slice(0, 1), [0]);
});

test('chat, streamed, with the usage chunk and the request id', async () => {
  const { data: stream, response } = await client.chat.completions
    .create({ model, messages: [{ role: 'user', content: 'hi' }], max_completion_tokens: 6, stream: true,
      stream_options: { include_usage: true } })
    .withResponse();
  assert.match(response.headers.get('x-request-id'), /^[0-9a-f]{32}$/);
  let text = '';
  let role = null;
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const c of chunk.choices) {
      if (c.delta.role) role = c.delta.role;
      if (c.delta.content) text += c.delta.content;
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(role, 'assistant');
  assert.equal(finish, 'length');
  assert.equal(usage.completion_tokens, 6);
  if (fake) assert.equal(text, expected(6));
});

test('completions, streamed and not, with n = 2', async () => {
  const r = await client.completions.create({ model, prompt: 'The capital of France is', max_tokens: 4, n: 2 });
  assert.equal(r.object, 'text_completion');
  assert.equal(r.choices.length, 2);
  if (fake) assert.equal(r.choices[1].text, expected(4));
  const stream = await client.completions.create({ model, prompt: [1, 2, 3], max_tokens: 3, stream: true });
  let text = '';
  for await (const chunk of stream) text += chunk.choices.map((c) => c.text).join('');
  if (fake) assert.equal(text, expected(3));
});

test('invalid requests are BadRequestErrors naming the parameter', async () => {
  await assert.rejects(
    client.chat.completions.create({ model, messages: [{ role: 'user', content: 'x' }], n: 9 }),
    (e) => e instanceof OpenAI.BadRequestError && e.status === 400 && e.param === 'n');
  await assert.rejects(
    client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'x' }] }),
    (e) => e instanceof OpenAI.NotFoundError && e.code === 'model_not_found');
  const noKey = new OpenAI({ apiKey: 'wrong', baseURL: `http://127.0.0.1:${port}/v1`, maxRetries: 0 });
  await assert.rejects(noKey.models.list(), (e) => e instanceof OpenAI.AuthenticationError);
});

test('a failure after streaming began reaches the SDK as an APIError', { skip: !fake }, async () => {
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: '[fake:fail_after=2]' }], max_tokens: 20, stream: true });
  let chunks = 0;
  await assert.rejects(async () => {
    for await (const _ of stream) chunks++;
  }, (e) => e instanceof OpenAI.APIError && /injected failure/.test(e.message));
  assert.equal(chunks, 3);  // the role chunk and two tokens
});

test('aborting a stream cancels the request in the engine', async () => {
  const before = await metric('aurora:request_success_total{model_name="' + model + '",finished_reason="abort"');
  const stream = await client.chat.completions.create({
    model, messages: [{ role: 'user', content: 'go' }], max_tokens: 1000, stream: true });
  let n = 0;
  for await (const _ of stream) {
    if (++n === 3) stream.controller.abort();
  }
  for (let i = 0; i < 200; i++) {
    if (await metric('aurora:request_success_total{model_name="' + model + '",finished_reason="abort"') === before + 1) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.equal(await metric('aurora:request_success_total{model_name="' + model + '",finished_reason="abort"'), before + 1);
  assert.equal(await metric('aurora:kv_cache_blocks_used'), 0);
});
