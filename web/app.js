// todo-chat web page: a thin client of the HTTP API. No framework, no build step.
// The page never mints tokens; it keeps the pasted one in sessionStorage only, together with
// the API base URL it was entered for, and never sends it anywhere else.

const DEFAULT_API = "http://localhost:9000";
const $ = (id) => document.getElementById(id);

const requestedApi =
  new URLSearchParams(location.search).get("api") || localStorage.getItem("api") || DEFAULT_API;

/** The stored token, only if it was entered for `api`: a link with another ?api= must not
 *  receive it until the user confirms that base URL on the sign-in form. */
function tokenFor(api) {
  return sessionStorage.getItem("token_api") === api ? sessionStorage.getItem("token") || "" : "";
}

const state = {
  api: requestedApi,
  token: tokenFor(requestedApi),
  conversationId: null,
  // The turn to resend on Retry: same body, same Idempotency-Key, so a retry is safe.
  pending: null,
  // Whether a reply is streaming in, which the Stop button ends.
  streaming: false,
  // The task panel: its filter and where its next page starts.
  taskFilter: "all",
  taskCursor: null,
  // Titles of the tasks the panel has shown, so a call waiting for approval can name its task.
  taskTitles: new Map(),
};

/** Tools whose success changes the task list, so the panel reloads after them. */
const TASK_CHANGING_TOOLS = new Set(["add_task", "complete_task", "delete_task", "update_task"]);

/** The `sub` claim of a JWT, used only to build paths; the server verifies the token. */
function userFromToken(token) {
  try {
    const payload = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(payload)).sub || null;
  } catch {
    return null;
  }
}

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(body?.message || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.retryAfter = retryAfter;
  }
}

/** Calls the API; throws ApiError for HTTP errors and TypeError for network failures. */
/** Sends a request to the API with the held token; resolves with the raw response. */
function send(method, path, { body, headers = {} } = {}) {
  return fetch(state.api.replace(/\/$/, "") + path, {
    method,
    headers: {
      Authorization: `Bearer ${state.token}`,
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...headers,
    },
    body: body ? JSON.stringify(body) : undefined,
  });
}

/** The error a refused response stands for, from its JSON envelope. */
async function refusal(response) {
  const json = await response.json().catch(() => null);
  return new ApiError(response.status, json, response.headers.get("Retry-After"));
}

async function api(method, path, options) {
  const response = await send(method, path, options);
  if (response.status === 204) return null;
  if (!response.ok) throw await refusal(response);
  return response.json().catch(() => null);
}

function userPath(rest) {
  return `/api/${encodeURIComponent(userFromToken(state.token))}${rest}`;
}

// ---------- rendering ----------

/** One readable line per tool call, e.g. "Added task #12: buy milk". */
export function describeToolCall(call) {
  const r = call.result || {};
  const task = r.task;
  if (r.denied) return `Not done: ${r.message}`;
  if (!r.success) return `${call.name.replace("_", " ")} failed: ${r.message || "unknown error"}`;
  switch (call.name) {
    case "add_task": return `Added task #${task.id}: ${task.title}`;
    case "complete_task":
      return r.already_completed ? `Task #${task.id} was already done: ${task.title}` : `Completed task #${task.id}: ${task.title}`;
    case "delete_task": return `Deleted task #${task.id}: ${task.title}`;
    case "update_task": return `Updated task #${task.id}: ${task.title}`;
    case "list_tasks": return `Listed ${r.tasks.length} of ${r.total} task(s)`;
    default: return r.message || call.name;
  }
}

function renderMessage({ id, role, content, tool_calls = [], reasoning = "", failed = false, finish_reason, versions = [] }) {
  const item = document.createElement("li");
  item.className = `message ${role}${failed ? " failed" : ""}`;
  if (id) item.dataset.id = id;
  const label = document.createElement("span");
  label.className = "role";
  label.textContent = role === "user" ? "You" : "Assistant";
  item.append(label);
  if (reasoning) reasoningBlock(item).textContent = reasoning;
  const text = document.createElement("div");
  text.className = "content";
  text.textContent = content; // never innerHTML: titles and replies are untrusted text
  item.append(text);
  if (tool_calls.length) {
    const tools = document.createElement("ul");
    tools.className = "tools";
    tools.setAttribute("aria-label", "Actions taken");
    for (const call of tool_calls) {
      if (call.approval && call.approval.approved === undefined) {
        tools.append(pendingLine(call));
        continue;
      }
      const line = document.createElement("li");
      line.className = call.result?.success ? "tool" : "tool tool-failed";
      line.textContent = describeToolCall(call);
      tools.append(line);
    }
    item.append(tools);
  }
  if (finish_reason === "abort") markStopped(item);
  if (id && versions.length > 1) item.append(versionSwitcher(id, versions, role));
  $("messages").append(item);
  item.scrollIntoView({ block: "end" });
  return item;
}

/** ‹ 2/3 ›: the versions of a message (left by a regenerate or an edit); each arrow shows
 *  the neighbouring version with the rest of its path. */
function versionSwitcher(id, versions, role) {
  const at = versions.indexOf(id);
  const nav = document.createElement("nav");
  nav.className = "versions";
  const which = role === "user" ? "message" : "answer";
  nav.setAttribute("aria-label", `Versions of this ${which}`);
  const step = (delta, label, text) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.textContent = text;
    button.setAttribute("aria-label", label);
    button.disabled = !versions[at + delta] || state.streaming;
    button.addEventListener("click", () => run(() => showVersion(versions[at + delta])));
    return button;
  };
  const count = document.createElement("span");
  count.textContent = `${at + 1}/${versions.length}`;
  nav.append(step(-1, `Previous ${which} version`, "‹"), count, step(1, `Next ${which} version`, "›"));
  return nav;
}

/** What a call waiting for approval would do, e.g. "Delete task #3: buy milk?". */
function describePending(call) {
  const id = call.arguments?.task_id;
  const title = state.taskTitles.get(id);
  const task = id === undefined ? "" : ` task #${id}${title ? `: ${title}` : ""}`;
  const verb = { delete_task: "Delete", complete_task: "Complete", update_task: "Change", add_task: "Add" }[call.name];
  return verb ? `${verb}${task}?` : `Run ${call.name}?`;
}

/** The tool line of a call that waits for the user: what it would do, Approve and Deny. Once
 *  every waiting call of the answer is decided, the answers go to the server together. */
function pendingLine(call) {
  const line = document.createElement("li");
  line.className = "tool pending";
  line.dataset.approval = call.approval.id;
  const text = document.createElement("span");
  text.textContent = describePending(call);
  line.append(text);
  for (const [label, approved] of [["Approve", true], ["Deny", false]]) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = approved ? "approve" : "secondary deny";
    button.textContent = label;
    button.setAttribute("aria-label", `${label}: ${text.textContent}`);
    button.addEventListener("click", () => !state.streaming && run(() => decide(line, approved)));
    line.append(button);
  }
  return line;
}

async function decide(line, approved) {
  line.dataset.approved = String(approved);
  line.querySelectorAll("button").forEach((button) => { button.disabled = true; });
  line.append(` — ${approved ? "approved" : "denied"}`);
  const answer = line.closest(".message");
  const lines = [...answer.querySelectorAll("li.pending")];
  if (lines.some((l) => l.dataset.approved === undefined)) return;
  await sendTurn({
    body: {
      conversation_id: state.conversationId,
      approvals: lines.map((l) => ({ approval_id: l.dataset.approval, approved: l.dataset.approved === "true" })),
    },
    key: crypto.randomUUID(),
    bubble: answer.previousElementSibling,
    revision: true,
  });
  await loadTasks();
}

/** Marks an answer the user stopped: what it shows is what was written until then. */
function markStopped(item) {
  item.classList.add("stopped");
  const note = document.createElement("p");
  note.className = "stopped-note";
  note.textContent = "Stopped";
  item.append(note);
}

/** A collapsed "Thinking" block for a reasoning model's thoughts; returns its text element. */
function reasoningBlock(item) {
  const block = document.createElement("details");
  block.className = "reasoning";
  const summary = document.createElement("summary");
  summary.textContent = "Thinking";
  const text = document.createElement("p");
  block.append(summary, text);
  item.append(block);
  return text;
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

function setBusy(busy) {
  state.streaming = busy;
  document.querySelectorAll("#messages .revise, #messages .versions button")
    .forEach((button) => { button.disabled = busy; });
  $("stop").hidden = !busy;
  $("send").disabled = busy;
  $("message").readOnly = busy;
  $("chat").setAttribute("aria-busy", String(busy));
}

// ---------- conversations ----------

let conversationLoads = 0;

async function loadConversations() {
  // Only the latest load renders: an older answer may arrive after a newer one (a reload's
  // own loads racing a click).
  const load = ++conversationLoads;
  const list = await api("GET", userPath("/conversations?limit=50"));
  if (load !== conversationLoads) return;
  const ul = $("conversations");
  ul.replaceChildren();
  for (const c of list.conversations) {
    const li = document.createElement("li");
    if (c.id === state.conversationId) {
      li.setAttribute("aria-current", "true");
      $("chat-title").textContent = c.title;
    }
    const open = document.createElement("button");
    open.type = "button";
    open.className = "open";
    open.textContent = c.title;
    open.title = `${c.title} (${c.message_count} messages)`;
    open.addEventListener("click", () => run(() => openConversation(c.id)));
    const del = document.createElement("button");
    del.type = "button";
    del.className = "secondary delete";
    del.textContent = "Delete";
    del.setAttribute("aria-label", `Delete conversation: ${c.title}`);
    del.addEventListener("click", () => run(() => deleteConversation(c.id, c.title)));
    li.append(open, del);
    ul.append(li);
  }
}

async function openConversation(id) {
  const detail = await api("GET", userPath(`/conversations/${id}?limit=200&include=reasoning`));
  showConversation(detail);
  await loadConversations();
  $("message").focus();
}

/** Shows another version of a message, with the rest of its path. */
async function showVersion(messageId) {
  const id = state.conversationId;
  const path = `/conversations/${id}/messages/${messageId}/show?limit=200&include=reasoning`;
  showConversation(await api("POST", userPath(path)));
}

function showConversation(detail) {
  setOpenConversation(detail.id);
  state.pending = null;
  $("retry").hidden = true;
  $("chat-title").textContent = detail.title;
  $("messages").replaceChildren();
  detail.messages.forEach(renderMessage);
  addRevisionControls();
  setStatus(detail.has_more ? "Showing the latest 200 messages." : "");
}

/** Regenerate on the last answer and Edit on the last user message. */
function addRevisionControls() {
  document.querySelectorAll("#messages .revise").forEach((button) => button.remove());
  const last = (role) => [...document.querySelectorAll(`#messages .message.${role}`)].pop();
  const answer = last("assistant");
  const question = last("user");
  const control = (label, action) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary revise";
    button.textContent = label;
    button.addEventListener("click", () => !state.streaming && run(action));
    return button;
  };
  if (answer?.dataset.id) answer.append(control("Regenerate", () => regenerate(answer)));
  if (question?.dataset.id) question.append(control("Edit", () => startEdit(question)));
}

async function deleteConversation(id, title) {
  if (!confirm(`Delete the conversation "${title}"?`)) return;
  await api("DELETE", userPath(`/conversations/${id}`));
  if (state.conversationId === id) newConversation();
  setStatus(`Deleted "${title}".`);
  await loadConversations();
}

function newConversation() {
  setOpenConversation(null);
  state.pending = null;
  $("retry").hidden = true;
  $("chat-title").textContent = "New conversation";
  $("messages").replaceChildren();
  setStatus("");
  $("message").focus();
}

/** The conversation on screen, remembered for the tab so a reload reopens it. */
function setOpenConversation(id) {
  state.conversationId = id;
  if (id) sessionStorage.setItem("open_conversation", id);
  else sessionStorage.removeItem("open_conversation");
}

// ---------- tasks ----------

/** Loads the first page of tasks for the chosen filter, or with `more` the next page. */
async function loadTasks({ more = false } = {}) {
  const params = new URLSearchParams({ status: state.taskFilter, limit: "20" });
  if (more && state.taskCursor) params.set("cursor", state.taskCursor);
  const page = await api("GET", userPath(`/tasks?${params}`));
  if (!more) $("tasks").replaceChildren();
  page.tasks.forEach((task) => $("tasks").append(renderTask(task)));
  state.taskCursor = page.next_cursor;
  $("more-tasks").hidden = !page.next_cursor;
  const which = state.taskFilter === "all" ? "" : `${state.taskFilter} `;
  $("task-count").textContent = `${page.total} ${which}task${page.total === 1 ? "" : "s"}`;
}

function renderTask(task) {
  const li = document.createElement("li");
  li.className = task.completed ? "done" : "";
  const box = document.createElement("input");
  box.type = "checkbox";
  box.id = `task-${task.id}`;
  box.checked = task.completed;
  box.addEventListener("change", () => run(async () => {
    await api("PATCH", userPath(`/tasks/${task.id}`), { body: { completed: box.checked } });
    await loadTasks();
  }));
  const label = document.createElement("label");
  label.htmlFor = box.id;
  label.textContent = `#${task.id} ${task.title}`; // untrusted text: textContent only
  state.taskTitles.set(task.id, task.title);
  const del = document.createElement("button");
  del.type = "button";
  del.className = "secondary delete";
  del.textContent = "Delete";
  del.setAttribute("aria-label", `Delete task: ${task.title}`);
  del.addEventListener("click", () => run(async () => {
    await api("DELETE", userPath(`/tasks/${task.id}`));
    await loadTasks();
  }));
  li.append(box, label, del);
  return li;
}

async function addTask(event) {
  event.preventDefault();
  const title = $("new-task").value.trim();
  if (!title) return;
  await api("POST", userPath("/tasks"), { body: { title } });
  $("new-task").value = "";
  await loadTasks();
}

// ---------- a chat turn ----------

async function sendTurn(turn) {
  setBusy(true);
  $("retry").hidden = true;
  setStatus("Assistant is thinking…");
  let bubble = null;
  try {
    const reply = await streamTurn(turn, (event) => {
      if (!bubble) bubble = assistantBubble();
      bubble.show(event);
    });
    turn.bubble.classList.remove("failed");
    turn.bubble.dataset.id = reply.user_message_id;
    bubble?.setId(reply.assistant_message_id);
    state.pending = null;
    if (reply.stopped) bubble?.stopped();
    const waiting = reply.finish_reason === "approval_required";
    setStatus(reply.stopped ? "Stopped. What was written is kept."
      : waiting ? "Waiting for your approval." : "");
    if (!turn.revision) $("message").value = "";
    // The reply is complete: the composer is free at once, while the lists refresh (on a
    // cold function that can take a while).
    setBusy(false);
    addRevisionControls();
    // A revision left versions: the stored conversation shows them.
    if (turn.revision) await openConversation(state.conversationId);
    await loadConversations();
    if (reply.tool_calls.some((c) => TASK_CHANGING_TOOLS.has(c.name) && c.result?.success)) {
      await loadTasks();
    }
  } catch (error) {
    bubble?.fail();
    turn.bubble.classList.add("failed");
    if (error.body?.conversation_id) {
      // The message is stored. Later messages go to this conversation; a retry resends
      // this turn unchanged with the same key, and the server completes it.
      setOpenConversation(error.body.conversation_id);
    }
    state.pending = turn;
    handleError(error, { canRetry: true });
  } finally {
    setBusy(false);
    $("message").focus();
  }
}

/** Sends a turn asking for a UI message stream; calls `onEvent` for each chunk and resolves
 *  with the turn's ids and tool calls once the stored answer's `finish` (or, for a turn the
 *  user stopped, `abort`) arrives. */
async function streamTurn(turn, onEvent) {
  const response = await send("POST", userPath("/chat"), {
    body: turn.body ?? { message: turn.message, conversation_id: turn.conversationId },
    headers: { Accept: "text/event-stream", "Idempotency-Key": turn.key },
  });
  if (!response.ok || !response.headers.get("content-type")?.startsWith("text/event-stream")) {
    throw await refusal(response);
  }
  return readStream(response, onEvent);
}

/** Reads a UI message stream (a turn's own, or a running one it follows) to its end. */
async function readStream(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const toolCalls = new Map();
  let ids = {};
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith("data: ") || event === "data: [DONE]") continue; // comments
      const chunk = JSON.parse(event.slice(6));
      if (chunk.type === "error") {
        // It carries the status the JSON answer would have had: handled the same way.
        throw new ApiError(chunk.status, chunk);
      }
      if (chunk.type === "tool-input-available") {
        toolCalls.set(chunk.toolCallId, { name: chunk.toolName, arguments: chunk.input });
      }
      // A call answered after approval had its input in the turn that asked.
      const call = () => toolCalls.get(chunk.toolCallId)
        ?? toolCalls.set(chunk.toolCallId, {}).get(chunk.toolCallId);
      if (chunk.type === "tool-output-available") call().result = chunk.output;
      if (chunk.type === "tool-approval-request") call().approval = { id: chunk.approvalId };
      if (chunk.type === "start") {
        // The conversation is known from the first chunk: Stop and a reload can name it.
        ids = chunk.messageMetadata;
        setOpenConversation(ids.conversation_id);
      }
      if (chunk.type === "finish") {
        return { ...chunk.messageMetadata, tool_calls: [...toolCalls.values()] };
      }
      if (chunk.type === "abort") {
        return { ...ids, stopped: true, tool_calls: [...toolCalls.values()] };
      }
      onEvent(chunk);
    }
  }
  // The connection closed before the stored answer arrived: a network failure.
  throw new TypeError("stream ended early");
}

/** An assistant message that grows as the stream arrives. */
function assistantBubble() {
  const item = renderMessage({ role: "assistant", content: "" });
  const content = item.querySelector(".content");
  const inputs = new Map(); // call id -> { name, arguments }
  let tools = null;
  let thoughts = null;
  return {
    /** Shows one chunk of the stream. */
    show(event) {
      if (event.type === "reasoning-delta") this.reasoning(event.delta);
      if (event.type === "text-delta") this.text(event.delta);
      if (event.type === "tool-input-available") this.input(event);
      if (event.type === "tool-output-available") this.tool(event);
      if (event.type === "tool-approval-request") this.approval(event);
      if (event.type !== "start") setStatus("Assistant is writing…");
    },
    reasoning(delta) {
      // Shown above the reply, before any text of it arrives.
      if (!thoughts) {
        thoughts = reasoningBlock(item);
        item.insertBefore(thoughts.parentElement, content);
      }
      thoughts.textContent += delta;
    },
    text(delta) {
      content.textContent += delta;
      item.scrollIntoView({ block: "end" });
    },
    input(event) {
      inputs.set(event.toolCallId, { name: event.toolName, arguments: event.input });
    },
    toolList() {
      if (!tools) {
        tools = document.createElement("ul");
        tools.className = "tools";
        tools.setAttribute("aria-label", "Actions taken");
        item.append(tools);
      }
      return tools;
    },
    approval(event) {
      const call = { ...inputs.get(event.toolCallId), approval: { id: event.approvalId } };
      this.toolList().append(pendingLine(call));
    },
    tool(event) {
      this.toolList();
      const call = { name: "tool", ...inputs.get(event.toolCallId), result: event.output };
      const line = document.createElement("li");
      line.className = call.result?.success ? "tool" : "tool tool-failed";
      line.textContent = describeToolCall(call);
      tools.append(line);
    },
    fail() {
      item.classList.add("failed");
    },
    setId(id) {
      if (id) item.dataset.id = id;
    },
    stopped() {
      markStopped(item);
    },
  };
}

/** Stops the reply being written, wherever the turn runs; its stream then ends with abort. */
async function stopTurn() {
  if (!state.streaming || !state.conversationId) return;
  setStatus("Stopping…");
  await api("POST", userPath(`/chat/${state.conversationId}/stop`));
}

/** After a reload: follows the reply still being written in conversation `id`, if any. */
async function resumeTurn(id) {
  const response = await send("GET", userPath(`/chat/${id}/stream`));
  if (response.status === 204) return;
  if (!response.ok) throw await refusal(response);
  setBusy(true);
  setStatus("Assistant is writing…");
  try {
    let bubble = null;
    const reply = await readStream(response, (event) => {
      if (!bubble) bubble = assistantBubble();
      bubble.show(event);
    });
    // The stored conversation, now with the answer, replaces what was streamed.
    await openConversation(id);
    if (reply.stopped) setStatus("Stopped. What was written is kept.");
  } finally {
    setBusy(false);
  }
}

function handleError(error, { canRetry = false } = {}) {
  if (error instanceof ApiError && error.status === 401) {
    showLogin(error.body.error === "token_expired"
      ? "Your token has expired. Paste a new one."
      : "Your token was not accepted. Paste a new one.");
    return;
  }
  let text;
  if (!(error instanceof ApiError)) {
    text = "Network error: the API could not be reached. Your message is kept; retry when you are back online.";
  } else if (error.status === 429) {
    const seconds = Number(error.retryAfter) || 60;
    text = `Too many messages. Retry in ${seconds} seconds.`;
  } else if (error.status === 503 || error.status === 502) {
    text = "The assistant is unavailable right now. Your message was saved; retry in a moment.";
  } else if (error.status === 409) {
    text = "Another reply is still being written in this conversation. Retry in a moment.";
  } else {
    text = error.message;
  }
  setStatus(text, true);
  $("retry").hidden = !(canRetry && state.pending);
}

/** Answers the last question again; the answer shown now is kept as another version. */
async function regenerate(answer) {
  const question = answer.previousElementSibling;
  answer.remove();
  await sendTurn({
    body: { conversation_id: state.conversationId, regenerate: true },
    key: crypto.randomUUID(),
    bubble: question,
    revision: true,
  });
}

/** Edits a user message in place; saving runs the turn from there, keeping the old path as
 *  another version. */
function startEdit(item) {
  const content = item.querySelector(".content");
  const form = document.createElement("form");
  form.className = "edit";
  const text = document.createElement("textarea");
  text.value = content.textContent;
  text.setAttribute("aria-label", "Edit message");
  const save = document.createElement("button");
  save.type = "submit";
  save.textContent = "Save";
  const cancel = document.createElement("button");
  cancel.type = "button";
  cancel.className = "secondary";
  cancel.textContent = "Cancel";
  cancel.addEventListener("click", () => { form.remove(); content.hidden = false; });
  form.append(text, save, cancel);
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const message = text.value.trim();
    if (!message || state.streaming) return;
    run(() => saveEdit(item, message));
  });
  content.hidden = true;
  item.querySelectorAll(".revise").forEach((button) => button.remove());
  content.after(form);
  text.focus();
}

async function saveEdit(item, message) {
  while (item.nextElementSibling) item.nextElementSibling.remove();
  item.querySelector("form.edit")?.remove();
  item.querySelector(".versions")?.remove();
  const content = item.querySelector(".content");
  content.textContent = message;
  content.hidden = false;
  await sendTurn({
    body: { conversation_id: state.conversationId, message, edit_message_id: item.dataset.id },
    key: crypto.randomUUID(),
    bubble: item,
    revision: true,
  });
}

async function onSubmit(event) {
  event.preventDefault();
  const message = $("message").value.trim();
  if (!message || $("send").disabled) return;
  const turn = {
    message,
    conversationId: state.conversationId,
    key: crypto.randomUUID(),
    bubble: renderMessage({ role: "user", content: message }),
  };
  await sendTurn(turn);
}

// ---------- sign-in ----------

function showLogin(error = "") {
  $("app").hidden = true;
  $("change-token").hidden = true;
  $("login").hidden = false;
  $("login-error").textContent = error;
  $("token").value = "";
  $("api-base").value = state.api;
  $("token").focus();
}

async function showApp() {
  $("login").hidden = true;
  $("app").hidden = false;
  $("change-token").hidden = false;
  // A reload reopens the conversation the tab had open, and follows a reply still running.
  const open = sessionStorage.getItem("open_conversation");
  newConversation();
  await Promise.all([loadConversations(), loadTasks()]);
  if (open) {
    // Gone (deleted elsewhere): start afresh.
    await openConversation(open).catch(() => newConversation());
    if (state.conversationId === open) await resumeTurn(open);
  }
}

/** Runs an action, showing its failure instead of losing it. */
async function run(action) {
  try {
    await action();
  } catch (error) {
    handleError(error);
  }
}

function init() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!userFromToken(token)) {
      $("login-error").textContent = "That does not look like a JWT with a user (sub).";
      return;
    }
    state.token = token;
    state.api = $("api-base").value.trim();
    sessionStorage.setItem("token", token);
    sessionStorage.setItem("token_api", state.api);
    localStorage.setItem("api", state.api);
    run(showApp);
  });
  $("composer").addEventListener("submit", onSubmit);
  $("message").addEventListener("keydown", (event) => {
    // Enter sends; Shift+Enter starts a new line.
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      $("composer").requestSubmit();
    }
  });
  $("retry").addEventListener("click", () => state.pending && sendTurn(state.pending));
  $("stop").addEventListener("click", () => run(stopTurn));
  $("new-conversation").addEventListener("click", newConversation);
  $("change-token").addEventListener("click", () => showLogin());
  $("task-form").addEventListener("submit", (event) => run(() => addTask(event)));
  $("task-filter").addEventListener("change", () => run(() => {
    state.taskFilter = $("task-filter").value;
    return loadTasks();
  }));
  $("more-tasks").addEventListener("click", () => run(() => loadTasks({ more: true })));

  if (state.token && userFromToken(state.token)) run(showApp);
  else if (sessionStorage.getItem("token")) {
    showLogin(`This page now points at ${state.api}, not the API your token was entered for. ` +
      "Paste a token to use this API, or check the link you followed.");
  } else showLogin();
}

init();
