// Browser test of the web page in headless Chromium (Debian's package), driven by
// playwright-core. Run by the end-to-end test in `make test`, which starts `make dev` on the
// built-in demo model (twice: once paced); it passes:
//   PAGE_URL  the page, with ?api= pointing at the served functions
//   PACED_PAGE_URL  the same, over a demo model that pauses between streamed chunks
//   TOKEN     a valid token for demo-user
//   SCREENSHOTS  where to write screenshots of the main states
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const { PAGE_URL, PACED_PAGE_URL, TOKEN, SCREENSHOTS = "screenshots" } = process.env;
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";

const shot = (page, name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

/** Headless Chromium (Debian's), with the page's tests' flags. */
function launch() {
  assert.ok(PAGE_URL && TOKEN, "PAGE_URL and TOKEN must be set");
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
}

/** Opens the page at `url` and signs in with the pasted token. */
async function signIn(page, url) {
  await page.goto(url);
  await page.getByLabel("Bearer token").fill(TOKEN);
  await page.getByRole("button", { name: "Start chatting" }).click();
  await page.getByRole("heading", { name: "Conversations" }).waitFor();
}

/** Sends `text` as a chat message with the keyboard and waits for the turn to end. */
async function say(page, text) {
  const composer = page.getByLabel("Message");
  await composer.fill(text);
  await composer.press("Enter");
  await page.locator('#chat[aria-busy="false"]').waitFor();
}

test("a user chats, sees the tool call, finds the conversation after a reload, deletes it, and is asked for a new token on 401", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    page.on("dialog", (dialog) => dialog.accept()); // confirm() before deleting

    // Sign in with a pasted token.
    await page.goto(PAGE_URL);
    await page.getByLabel("Bearer token").fill(TOKEN);
    await shot(page, "1-sign-in");
    await page.getByRole("button", { name: "Start chatting" }).click();
    await page.getByRole("heading", { name: "Conversations" }).waitFor();

    // Send a message with the keyboard; the turn shows a pending state, then the reply
    // and the tool call it made.
    const composer = page.getByLabel("Message");
    await composer.fill("Add a task to buy milk");
    await composer.press("Enter");
    await page.getByText("Added task #1: buy milk").waitFor();
    await page.getByText("I added “buy milk” to your list.").waitFor();
    assert.equal(await page.locator("#chat").getAttribute("aria-busy"), "false");
    assert.equal(await page.locator(".message.user .content").first().textContent(), "Add a task to buy milk");
    await shot(page, "2-reply-with-tool-call");

    // After a reload the conversation is in the sidebar and opens with its messages.
    await page.reload();
    const entry = page.getByRole("button", { name: "Add a task to buy milk", exact: true });
    await entry.waitFor();
    await entry.click();
    await page.getByText("Added task #1: buy milk").waitFor();
    const roles = await page.locator("#messages .role").allTextContents();
    assert.deepEqual(roles, ["You", "Assistant"]);
    await shot(page, "3-reloaded-conversation");

    // Delete it.
    await page.getByRole("button", { name: "Delete conversation: Add a task to buy milk" }).click();
    await page.getByText('Deleted "Add a task to buy milk".').waitFor();
    assert.equal(await page.locator("#conversations li").count(), 0);
    await shot(page, "4-deleted");

    // A token the API refuses sends the user back to sign in.
    await page.getByRole("button", { name: "Change token" }).click();
    const [header, , signature] = TOKEN.split(".");
    const forged = [header, Buffer.from(JSON.stringify({ sub: "demo-user", exp: 4102444800 })).toString("base64url"), signature].join(".");
    await page.getByLabel("Bearer token").fill(forged);
    await page.getByRole("button", { name: "Start chatting" }).click();
    await page.getByText("Your token was not accepted. Paste a new one.").waitFor();
    assert.equal(await page.locator("#app").isVisible(), false, "the chat is hidden until a new token");
    assert.equal(await page.getByLabel("Bearer token").evaluate((el) => el === document.activeElement), true);
    await shot(page, "5-token-refused");
  } finally {
    await browser.close();
  }
});

test("a task added by chat appears in the panel, ticked there it is what the assistant lists as completed", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    await page.goto(PAGE_URL);
    await page.getByLabel("Bearer token").fill(TOKEN);
    await page.getByRole("button", { name: "Start chatting" }).click();
    const panel = page.getByRole("complementary", { name: "Tasks" });
    await panel.waitFor();

    // Added by chat: the panel refreshes after the turn.
    await say(page, "Add a task to water the plants");
    const task = panel.getByRole("checkbox", { name: /water the plants/ });
    await task.waitFor();
    await shot(page, "6-task-added-by-chat");

    // Ticked in the panel.
    await task.check();
    await panel.locator("li.done", { hasText: "water the plants" }).waitFor();
    assert.equal(await task.isChecked(), true);
    await shot(page, "7-task-ticked-in-panel");

    // The assistant sees it completed on the next turn.
    await say(page, "Show my completed tasks");
    await page.locator(".message.assistant .content", { hasText: "“water the plants” (done)" }).waitFor();
    assert.match(await page.locator(".message.assistant .tools").last().textContent(), /Listed \d+ of \d+ task/);

    // Added in the panel, filtered, and removed there too.
    await panel.getByLabel("New task").fill("Call mum");
    await panel.getByRole("button", { name: "Add" }).click();
    await panel.getByRole("checkbox", { name: /Call mum/ }).waitFor();
    await panel.getByLabel("Show").selectOption("pending");
    await panel.getByText(/^\d+ pending tasks?$/).waitFor();
    assert.equal(await panel.getByRole("checkbox", { name: /water the plants/ }).count(), 0);
    await shot(page, "8-assistant-lists-completed-panel-filtered");
    await panel.getByRole("button", { name: "Delete task: Call mum" }).click();
    await panel.getByText(/^0 pending tasks$|^1 pending task$/).waitFor();
    assert.equal(await panel.getByRole("checkbox", { name: /Call mum/ }).count(), 0);
  } finally {
    await browser.close();
  }
});

test("the reply streams in: its first words show while the turn is still running", async () => {
  assert.ok(PACED_PAGE_URL, "PACED_PAGE_URL must be set");
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await signIn(page, PACED_PAGE_URL);

    const composer = page.getByLabel("Message");
    await composer.fill("Add a task to buy bread");
    await composer.press("Enter");
    // The model (paced by the test) is still writing: some text is there, not all of it.
    const partial = await page.waitForFunction(() => {
      const content = [...document.querySelectorAll(".message.assistant .content")].at(-1);
      const busy = document.querySelector("#chat").getAttribute("aria-busy") === "true";
      return busy && content?.textContent ? content.textContent : null;
    });
    const early = await partial.jsonValue();
    await shot(page, "9-reply-streaming");
    await page.locator('#chat[aria-busy="false"]').waitFor();
    const final = await page.locator(".message.assistant .content").last().textContent();

    assert.ok(final.startsWith(early) && final.length > early.length, `${early} / ${final}`);
    assert.match(final, /I added “buy bread” to your list/);
    assert.match(await page.locator(".message.assistant .tools").last().textContent(), /buy bread/);
  } finally {
    await browser.close();
  }
});

test("a link that points the page at another API never sends it the token unconfirmed", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const elsewhere = "http://127.0.0.1:9"; // nothing listens there; only requests matter
    const leaked = [];
    page.on("request", (request) => {
      if (request.url().startsWith(elsewhere)) leaked.push(request.headers().authorization);
    });
    await signIn(page, PAGE_URL);

    // The same tab follows a crafted link.
    const crafted = new URL(PAGE_URL);
    crafted.searchParams.set("api", elsewhere);
    await page.goto(crafted.href);

    await page.getByText(`This page now points at ${elsewhere}`).waitFor();
    assert.equal(await page.locator("#app").isVisible(), false);
    assert.equal(await page.getByLabel("API base URL").inputValue(), elsewhere);
    assert.deepEqual(leaked, [], "no request reached the other API");
    await shot(page, "10-other-api-asks-to-sign-in");

    // Back on the API the token was entered for, the tab is signed in again.
    await page.goto(PAGE_URL);
    await page.getByRole("heading", { name: "Conversations" }).waitFor();
    assert.deepEqual(leaked, []);
  } finally {
    await browser.close();
  }
});

/** Signs in on the paced `make dev` and sends `text`; resolves once part of the reply shows. */
async function startPacedReply(page, text) {
  await signIn(page, PACED_PAGE_URL);
  const composer = page.getByLabel("Message");
  await composer.fill(text);
  await composer.press("Enter");
  const partial = await page.waitForFunction(() => {
    const content = [...document.querySelectorAll(".message.assistant .content")].at(-1);
    return content?.textContent ? content.textContent : null;
  });
  return partial.jsonValue();
}

test("Stop ends the reply on the server, and a reload shows what was written, marked stopped", async () => {
  assert.ok(PACED_PAGE_URL, "PACED_PAGE_URL must be set");
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const early = await startPacedReply(page, "What can you do?");

    await page.getByRole("button", { name: "Stop" }).click();
    await page.getByText("Stopped. What was written is kept.").waitFor();
    await shot(page, "11-stopped");
    assert.equal(await page.getByRole("button", { name: "Stop" }).isHidden(), true);
    const shown = await page.locator(".message.assistant .content").last().textContent();

    await page.reload();
    const answer = page.locator(".message.assistant").last();
    await answer.locator(".stopped-note").waitFor();
    const kept = await answer.locator(".content").textContent();
    await shot(page, "12-stopped-after-reload");
    assert.ok(kept.startsWith(early) && kept.startsWith(shown.slice(0, early.length)), `${early} / ${kept}`);
    assert.doesNotMatch(kept, /restart `make dev`/, "the reply was cut short");
  } finally {
    await browser.close();
  }
});

test("a reload while the reply is written reopens the conversation and follows the reply to its end", async () => {
  assert.ok(PACED_PAGE_URL, "PACED_PAGE_URL must be set");
  const browser = await launch();
  try {
    const page = await browser.newPage();
    const early = await startPacedReply(page, "Help me please");

    await page.reload();
    // The stored user message, then the reply streaming in again from its start.
    await page.locator(".message.user .content", { hasText: "Help me please" }).waitFor();
    await page.getByRole("button", { name: "Stop" }).waitFor();
    await shot(page, "13-resumed-after-reload");
    await page.locator('#chat[aria-busy="false"]').waitFor({ timeout: 60_000 });
    const final = await page.locator(".message.assistant .content").last().textContent();
    await shot(page, "14-resumed-to-the-end");

    assert.ok(final.startsWith(early) && final.length > early.length, `${early} / ${final}`);
    assert.match(final, /restart `make dev`/, "the whole reply");
    assert.equal(await page.locator(".message.assistant").count(), 1);
  } finally {
    await browser.close();
  }
});

test("Regenerate keeps the old answer as a version, Edit runs from the edited message, and ‹ › switches between versions, also after a reload", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage();
    await signIn(page, PAGE_URL);
    await say(page, "What can you do?");
    const answer = () => page.locator(".message.assistant").last();
    const question = () => page.locator(".message.user").last();

    // Regenerate: a new answer, the old one kept as version 1 of 2.
    await answer().getByRole("button", { name: "Regenerate" }).click();
    await page.locator('#chat[aria-busy="false"]').waitFor();
    await answer().getByRole("navigation", { name: "Versions of this answer" }).getByText("2/2").waitFor();
    await shot(page, "15-regenerated");
    await answer().getByRole("button", { name: "Previous answer version" }).click();
    await answer().getByText("1/2").waitFor();
    assert.equal(await page.locator(".message").count(), 2, "one question, one answer shown");

    // Edit the question: the turn runs from there; the old question and its answers are
    // version 1 of the question.
    await question().getByRole("button", { name: "Edit" }).click();
    await page.getByLabel("Edit message").fill("Add a task to feed the cat");
    await shot(page, "16-editing");
    await page.getByRole("button", { name: "Save" }).click();
    await page.locator('#chat[aria-busy="false"]').waitFor();
    await page.getByText(/Added task #\d+: feed the cat/).waitFor();
    await question().getByRole("navigation", { name: "Versions of this message" }).getByText("2/2").waitFor();
    assert.equal(await question().locator(".content").textContent(), "Add a task to feed the cat");
    await shot(page, "17-edited");

    // Back to the first question: its own answers (and their versions) come back with it.
    await question().getByRole("button", { name: "Previous message version" }).click();
    await question().getByText("1/2").waitFor();
    assert.equal(await question().locator(".content").textContent(), "What can you do?");
    await answer().getByText("1/2").waitFor();
    await shot(page, "18-earlier-version");

    // The version shown is the stored one: a reload shows it again.
    await page.reload();
    await question().getByText("1/2").waitFor();
    assert.equal(await question().locator(".content").textContent(), "What can you do?");
  } finally {
    await browser.close();
  }
});

test("a delete the assistant asks for waits for Approve or Deny, still waits after a reload, and runs only when approved", async () => {
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    await signIn(page, PAGE_URL);
    const panel = page.getByRole("complementary", { name: "Tasks" });
    await panel.getByLabel("New task").fill("Post the stamps");
    await panel.getByRole("button", { name: "Add" }).click();
    const task = panel.getByRole("checkbox", { name: /Post the stamps/ });
    await task.waitFor();

    // The model asks to delete it: the call waits, naming the task.
    await say(page, "delete post the stamps");
    const pending = page.locator("li.pending", { hasText: /Delete task #\d+: Post the stamps\?/ });
    await pending.waitFor();
    await page.getByText("Waiting for your approval.").waitFor();
    await shot(page, "19-approval-pending");

    // Still waiting after a reload; denied, it never runs.
    await page.reload();
    await pending.waitFor();
    await pending.getByRole("button", { name: /^Deny/ }).click();
    await page.locator('#chat[aria-busy="false"]').waitFor();
    await page.getByText("All right, I left it as it is.").waitFor();
    assert.equal(await task.count(), 1, "the task is still there");
    assert.equal(await page.locator("li.pending button:enabled").count(), 0);

    // Asked again and approved: it runs.
    await say(page, "delete post the stamps");
    await page.locator("li.pending button:enabled", { hasText: "Approve" }).click();
    await page.locator('#chat[aria-busy="false"]').waitFor();
    await page.getByText(/I deleted task #\d+ “Post the stamps”/).waitFor();
    await shot(page, "20-approved-and-deleted");
    await task.waitFor({ state: "detached" });
  } finally {
    await browser.close();
  }
});
