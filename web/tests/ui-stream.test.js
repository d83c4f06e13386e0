// A streamed chat turn read by the `ai` package's own client machinery: the chat transport
// useChat uses, and its UI message stream reader. No parser of ours is involved.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DefaultChatTransport, readUIMessageStream } from 'ai';

const api = process.env.API_URL;
// A user of its own: the page's browser test runs beside it as the demo user.
const token = process.env.STREAM_TOKEN;

/** The transport a frontend would give useChat: our body shape, our headers. */
function transport() {
  return new DefaultChatTransport({
    api: `${api}/api/chat`,
    headers: { Authorization: `Bearer ${token}`, Accept: 'text/event-stream' },
    prepareSendMessagesRequest: ({ messages, body }) => ({
      body: {
        message: messages.at(-1).parts.find((p) => p.type === 'text').text,
        conversation_id: body?.conversation_id ?? null,
      },
    }),
  });
}

async function send(text, body) {
  const stream = await transport().sendMessages({
    chatId: 'chat-1',
    messages: [{ id: 'u1', role: 'user', parts: [{ type: 'text', text }] }],
    trigger: 'submit-message',
    messageId: undefined,
    abortSignal: undefined,
    body,
  });
  let message;
  for await (const assembled of readUIMessageStream({ stream })) message = assembled;
  return message;
}

test('a streamed turn with a tool call assembles into one assistant UI message', async () => {
  const message = await send('Add a task to buy bread');

  assert.equal(message.role, 'assistant');
  const tool = message.parts.find((p) => p.type === 'tool-add_task');
  assert.ok(tool, JSON.stringify(message.parts));
  assert.equal(tool.state, 'output-available');
  assert.equal(tool.input.title, 'buy bread');
  assert.equal(tool.output.success, true);
  assert.equal(tool.output.task.title, 'buy bread');
  // make dev's demo model reasons: its thought is a reasoning part, never the text.
  const reasoning = message.parts.filter((p) => p.type === 'reasoning');
  assert.ok(reasoning.length > 0, JSON.stringify(message.parts));
  assert.match(reasoning[0].text, /I'll call add_task/);
  const text = message.parts.filter((p) => p.type === 'text').map((p) => p.text).join('');
  assert.match(text, /buy bread/);
  assert.doesNotMatch(text, /I'll call/);
  assert.equal(message.id, message.metadata.assistant_message_id);
  for (const id of ['conversation_id', 'user_message_id', 'assistant_message_id']) {
    assert.match(message.metadata[id], /^[0-9a-f-]{36}$/);
  }
  assert.ok(message.metadata.created_at, 'finish carries the stored time');

  // The same conversation continues with the id the metadata carried.
  const next = await send('What is on my list?', {
    conversation_id: message.metadata.conversation_id,
  });
  assert.equal(next.metadata.conversation_id, message.metadata.conversation_id);
  const listed = next.parts.find((p) => p.type === 'tool-list_tasks');
  assert.deepEqual(listed.output.tasks.map((t) => t.title), ['buy bread']);
});
