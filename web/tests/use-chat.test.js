// The `ai` package's own chat state machine (`AbstractChat`, which `useChat` runs) with its
// `DefaultChatTransport` on default options: the URL, the Authorization header and a UUID
// chat id are all it is given. What it assembles live must be what the server stored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  AbstractChat,
  DefaultChatTransport,
  lastAssistantMessageIsCompleteWithApprovalResponses,
  validateUIMessages,
} from 'ai';

const api = process.env.API_URL;
// A user of its own: the other tests run beside it.
const user = 'sdk-user';
const token = process.env.SDK_TOKEN;

/** The smallest chat state: what a framework binding keeps in its store. */
class MemoryState {
  status = 'ready';
  error = undefined;
  constructor(messages = []) {
    this.messages = messages;
  }

  pushMessage = (message) => { this.messages = this.messages.concat(message); };
  popMessage = () => { this.messages = this.messages.slice(0, -1); };
  replaceMessage = (index, message) => {
    this.messages = [...this.messages.slice(0, index), message, ...this.messages.slice(index + 1)];
  };
  snapshot = (thing) => structuredClone(thing);
}

/** A chat as `useChat` makes one: `messages` are where it starts. */
class Chat extends AbstractChat {
  constructor({ messages, ...options }) {
    super({ ...options, state: new MemoryState(messages) });
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

// Below, the paced `make dev`: its demo model writes its long help text word by word, so a
// turn is still running when the test reloads or stops it.
const pacedApi = process.env.PACED_API_URL;
const authorization = { Authorization: `Bearer ${token}` };
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const transportTo = (base) =>
  new DefaultChatTransport({ api: `${base}/api/chat`, headers: authorization });

/** The conversation as stored, in the AI SDK's shape. */
async function storedUiMessages(base, id) {
  const response = await fetch(`${base}/api/${user}/conversations/${id}?format=ui`, {
    headers: authorization,
  });
  assert.equal(response.status, 200);
  return validateUIMessages({ messages: (await response.json()).messages });
}

/** Resolves once `chat` shows some of the assistant's reply. */
async function untilReplyShows(chat) {
  while (!(chat.status === 'streaming' && chat.lastMessage?.role === 'assistant'
    && textOf(chat.lastMessage).join('').length > 0)) {
    await sleep(20);
  }
}

test('a reload mid-reply resumes the running turn in a new chat, to the end that is stored', async () => {
  const id = randomUUID();
  const tab = new Chat({ id, transport: transportTo(pacedApi) });
  const sending = tab.sendMessage({ text: 'hello there' });
  await untilReplyShows(tab);

  // The tab reloads: its request goes (the turn does not), and the new page's chat resumes
  // on mount, as useChat({ resume: true }) does, from the history it loaded.
  await tab.stop();
  await sending;
  const reloaded = new Chat({
    id,
    transport: transportTo(pacedApi),
    messages: await storedUiMessages(pacedApi, id),
  });
  await reloaded.resumeStream();

  assert.equal(reloaded.error, undefined);
  const stored = await storedUiMessages(pacedApi, id);
  assert.deepEqual(reloaded.messages.map((m) => m.role), ['user', 'assistant']);
  const [live, kept] = [reloaded.lastMessage, stored.at(-1)];
  assert.equal(live.id, kept.id, 'the resumed message is the stored one');
  assert.deepEqual(textOf(live), textOf(kept));
  assert.ok(textOf(kept)[0].length > textOf(tab.lastMessage).join('').length);
});

test('stop ends the turn on the server: onFinish sees isAbort and a reload shows the partial answer', async () => {
  const id = randomUUID();
  const finishes = [];
  const chat = new Chat({
    id,
    transport: transportTo(pacedApi),
    onFinish: (finish) => finishes.push(finish),
  });
  const sending = chat.sendMessage({ text: 'hello there' });
  await untilReplyShows(chat);

  // A Stop button does both: the chat stops reading, the server stops the turn.
  const [stopped] = await Promise.all([
    fetch(`${pacedApi}/api/chat/${id}/stop`, { method: 'POST', headers: authorization }),
    chat.stop(),
  ]);
  await sending;

  assert.equal(stopped.status, 202);
  assert.equal(finishes.at(-1).isAbort, true);
  let resumed;
  do {
    await sleep(100);
    resumed = await fetch(`${pacedApi}/api/chat/${id}/stream`, { headers: authorization });
  } while (resumed.status === 200);
  assert.equal(resumed.status, 204, 'nothing runs any more');
  const answer = (await storedUiMessages(pacedApi, id)).at(-1);
  assert.equal(answer.metadata.finish_reason, 'abort');
  const [seen, kept] = [textOf(chat.lastMessage).join(''), textOf(answer).join('')];
  assert.ok(kept.length > 0 && kept.startsWith(seen), `${seen} / ${kept}`);
  assert.ok(!kept.includes('restart `make dev`'), 'the help text was cut short');
});

test('regenerate and edit through the chat machinery keep the old versions, and what it assembles is what is stored', async () => {
  const id = randomUUID();
  const chat = new Chat({ id, transport: transportTo(api) });
  await chat.sendMessage({ text: 'hello there' });
  const firstAnswer = chat.lastMessage.id;

  // regenerate() with no argument: the last answer again.
  await chat.regenerate();
  const secondAnswer = chat.lastMessage.id;
  // sendMessage({ text, messageId }): the question edited, by the id the client gave it.
  await chat.sendMessage({ text: 'Add a task to buy flour', messageId: chat.messages[0].id });

  assert.equal(chat.error, undefined);
  assert.notEqual(secondAnswer, firstAnswer);
  const live = chat.messages;
  assert.deepEqual(live.map((m) => m.role), ['user', 'assistant']);
  assert.deepEqual(textOf(live[0]), ['Add a task to buy flour']);
  const added = toolsOf(live[1]).find((t) => t.type === 'tool-add_task');
  assert.equal(added.output.task.title, 'buy flour');
  const stored = await storedUiMessages(api, id);
  assert.equal(stored.length, live.length);
  for (const [i, message] of live.entries()) {
    assert.equal(stored[i].role, message.role);
    assert.deepEqual(textOf(stored[i]), [textOf(message).join('')]);
    assert.deepEqual(toolsOf(stored[i]), toolsOf(message));
  }
  assert.equal(stored[1].id, live[1].id, 'the streamed answer is the stored one');
  assert.equal(stored[0].metadata.versions.length, 2, 'hello there, and its edit');

  // The first question comes back with its own answers: the regenerated one shown, the
  // first one kept as its other version.
  const shown = await fetch(
    `${api}/api/${user}/conversations/${id}/messages/${stored[0].metadata.versions[0]}/show?format=ui`,
    { method: 'POST', headers: authorization },
  );
  assert.equal(shown.status, 200);
  const earlier = await validateUIMessages({ messages: (await shown.json()).messages });
  assert.deepEqual(textOf(earlier[0]), ['hello there']);
  assert.equal(earlier[1].id, secondAnswer);
  assert.deepEqual(earlier[1].metadata.versions, [firstAnswer, secondAnswer]);
});

test('tool approval through the chat machinery: addToolApprovalResponse denies one delete and approves another', async () => {
  const id = randomUUID();
  const chat = new Chat({
    id,
    transport: transportTo(api),
    sendAutomaticallyWhen: lastAssistantMessageIsCompleteWithApprovalResponses,
  });
  const deletion = (state) => chat.lastMessage.parts.find(
    (p) => p.type === 'tool-delete_task' && (state === undefined || p.state === state),
  );
  const settled = async (state) => {
    while (!(chat.status === 'ready' && deletion(state))) await sleep(20);
  };
  await chat.sendMessage({ text: 'Add a task to buy tea' });
  await chat.sendMessage({ text: 'Add a task to buy coffee' });

  // The model asks to delete "buy tea": the call waits; denied, it never runs.
  await chat.sendMessage({ text: 'delete buy tea' });
  const asked = deletion('approval-requested');
  assert.ok(asked, 'the delete waits for approval');
  const waitingId = chat.lastMessage.id;
  await chat.addToolApprovalResponse({ id: asked.approval.id, approved: false, reason: 'still need tea' });
  await settled('output-denied');
  assert.equal(chat.lastMessage.id, waitingId, 'the turn continued in the same message');
  assert.deepEqual(textOf(chat.lastMessage).join(''), 'All right, I left it as it is.');

  // Asked to delete "buy coffee" and approved: it runs, with the arguments the model gave.
  await chat.sendMessage({ text: 'delete buy coffee' });
  await chat.addToolApprovalResponse({ id: deletion('approval-requested').approval.id, approved: true });
  await settled('output-available');
  const ran = deletion('output-available');
  assert.equal(ran.output.task.title, 'buy coffee');
  assert.equal(ran.approval.approved, true);
  assert.equal(chat.error, undefined);

  // What the chat assembled is what the server stored.
  const stored = await storedUiMessages(api, id);
  assert.equal(stored.length, chat.messages.length);
  for (const [i, message] of chat.messages.entries()) {
    assert.equal(stored[i].id === message.id || message.role === 'user', true);
    assert.deepEqual(
      toolsOf(stored[i]).map(({ type, state, input }) => ({ type, state, input })),
      toolsOf(message).map(({ type, state, input }) => ({ type, state, input })),
    );
    assert.deepEqual(textOf(stored[i]), textOf(message).length ? [textOf(message).join('')] : []);
  }
  const tasks = await fetch(`${api}/api/${user}/tasks?status=pending`, { headers: authorization });
  const titles = (await tasks.json()).tasks.map((t) => t.title);
  assert.ok(titles.includes('buy tea') && !titles.includes('buy coffee'), titles.join(', '));
});
