// The `ai` package's own chat state machine (`AbstractChat`, which `useChat` runs) with its
// `DefaultChatTransport` on default options: the URL, the Authorization header and a UUID
// chat id are all it is given. What it assembles live must be what the server stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { AbstractChat, DefaultChatTransport, validateUIMessages } from 'ai';

const api = process.env.API_URL;
// A user of its own: the other tests run beside it.
const user = 'sdk-user';
const token = process.env.SDK_TOKEN;

/** The smallest chat state: what a framework binding keeps in its store. */
class MemoryState {
  status = 'ready';
  error = undefined;
  messages = [];
  pushMessage = (message) => { this.messages = this.messages.concat(message); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  };
  snapshot = (thing) => structuredClone(thing);
}

class Chat extends AbstractChat {
  constructor(options) {
    super({ ...options, state: new MemoryState() });
  }
}

const textOf = (message, type = 'text') =>
  message.parts.filter((p) => p.type === type).map((p) => p.text);
const toolsOf = (message) =>
  message.parts
    .filter((p) => p.type.startsWith('tool-'))
    .map(({ type, toolCallId, state, input, output }) => ({ type, toolCallId, state, input, output }));

test('useChat on its default transport: sends, continues, and reads back as stored', async () => {
  const id = randomUUID();
  const finishes = [];
  const chat = new Chat({
    id,
    transport: new DefaultChatTransport({
      api: `${api}/api/chat`,
      headers: { Authorization: `Bearer ${token}` },
    }),
    onFinish: (finish) => finishes.push(finish),
  });

  await chat.sendMessage({ text: 'Add a task to buy eggs' });
  await chat.sendMessage({ text: 'Show my pending tasks' });

  assert.equal(chat.error, undefined);
  assert.equal(chat.status, 'ready');
  assert.deepEqual(finishes.map((f) => f.isAbort), [false, false]);
  const live = chat.messages;
  assert.deepEqual(live.map((m) => m.role), ['user', 'assistant', 'user', 'assistant']);
  const added = toolsOf(live[1]).find((t) => t.type === 'tool-add_task');
  assert.equal(added.output.task.title, 'buy eggs');
  const listed = toolsOf(live[3]).find((t) => t.type === 'tool-list_tasks');
  assert.deepEqual(listed.output.tasks.map((t) => t.title), ['buy eggs']);

  const response = await fetch(
    `${api}/api/${user}/conversations/${id}?format=ui&include=reasoning`,
    { headers: { Authorization: `Bearer ${token}` } },
  );
  assert.equal(response.status, 200);
  const stored = await validateUIMessages({ messages: (await response.json()).messages });

  assert.equal(stored.length, live.length);
  for (const [i, message] of live.entries()) {
    const kept = stored[i];
    assert.equal(kept.role, message.role);
    assert.deepEqual(textOf(kept), [textOf(message).join('')]);
    assert.deepEqual(toolsOf(kept), toolsOf(message));
    if (message.role === 'assistant') {
      assert.equal(kept.id, message.id, 'the streamed message id is the stored one');
      assert.equal(kept.metadata.conversation_id, id, 'the chat id is the conversation');
      assert.equal(kept.metadata.assistant_message_id, message.metadata.assistant_message_id);
      // The demo model reasons before each round; the stored thought joins the rounds'.
      assert.deepEqual(textOf(kept, 'reasoning'), [textOf(message, 'reasoning').join('\n\n')]);
    }
  }
});
