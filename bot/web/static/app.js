// Web chat page: a simulated building group chat plus each resident's private chat with the bot.
// It speaks only the REST channel (POST webhooks/rest/webhook); everything shown is rendered with
// textContent, never as HTML, because bot replies echo resident text.
"use strict";
(() => {
  const GROUP = "group"; // key of the group chat; private chats are keyed by the resident's sender id
  const GROUP_TITLE = "幸福里3栋业主群";
  const BOT_NAME = "回音";
  const STORE_KEY = "huiyin-webchat-v1";
  const WEBHOOK = "webhooks/rest/webhook";
  const INBOX_POLL_MS = 3000; // how often messages the bot sends on its own (appeal progress) are collected
  const PRESET = [["wang", "王阿姨"], ["li", "李先生"], ["zhang", "小张"]];
  const $ = (id) => document.getElementById(id);

  // crypto.randomUUID exists only in secure contexts; the page may be opened over plain http on a LAN.
  function uuid() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    const b = crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 15) | 64;
    b[8] = (b[8] & 63) | 128;
    const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  }

  // Every browser gets its own tag in the ids, so two people trying a shared demo server never land in
  // each other's dialogs, and "重新开始" really starts over on the server too.
  function freshState() {
    const tag = uuid().slice(0, 6);
    const residents = PRESET.map(([key, name]) => ({ id: `web-${key}-${tag}`, name }));
    return {
      tag, seq: 0, residents, speaker: residents[0].id, active: GROUP, groupId: `web-demo-group-${tag}`,
      mention: true, chats: { [GROUP]: { messages: [], unread: 0 } },
    };
  }

  function loadState() {
    try {
      const saved = JSON.parse(localStorage.getItem(STORE_KEY) || "null");
      if (saved && saved.chats && saved.chats[GROUP] && Array.isArray(saved.residents)) return saved;
    } catch (_) { /* unreadable storage: start fresh */ }
    return freshState();
  }

  const state = loadState();
  const save = () => { try { localStorage.setItem(STORE_KEY, JSON.stringify(state)); } catch (_) { /* full */ } };
  const resident = (id) => state.residents.find((r) => r.id === id);
  const nameOf = (id) => (id === "bot" ? BOT_NAME : (resident(id) || { name: id }).name);
  const chat = (key) => (state.chats[key] ||= { messages: [], unread: 0 });
  const avatarChar = (name) => (/^[小老阿]./.test(name) ? name[1] : name[0]) || "?";
  let pending = 0;

  function el(tag, cls, text) {
    const node = document.createElement(tag);
    if (cls) node.className = cls;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // --- rendering --------------------------------------------------------------------------------
  function logOf(key) {
    let log = document.querySelector(`.log[data-chat="${CSS.escape(key)}"]`);
    if (log) return log;
    log = el("div", "log");
    log.dataset.chat = key;
    log.hidden = key !== state.active;
    const hint = key === GROUP
      ? "试试说「3栋2单元楼道灯坏了」或「下水道堵了找谁」（勾选 @回音 时它才会回应）"
      : `这里是${nameOf(key)}和回音的私聊，电话等个人信息只在这里说。`;
    log.append(el("div", "empty", hint));
    $("logs").append(log);
    return log;
  }

  function renderMessage(key, m) {
    const log = logOf(key);
    log.querySelector(".empty")?.remove();
    let node;
    if (m.from === "system") {
      node = el("div", "msg system" + (m.error ? " error" : ""), m.text);
      if (m.link) {
        node.classList.add("link");
        node.addEventListener("click", () => showChat(m.link));
      }
    } else {
      const isBot = m.from === "bot";
      node = el("div", "msg " + (isBot ? "bot" : "resident"));
      node.dataset.from = m.from;
      const avatar = el("div", "avatar", isBot ? "回" : avatarChar(nameOf(m.from)));
      if (!isBot) {
        avatar.title = `打开${nameOf(m.from)}的私聊`;
        avatar.addEventListener("click", () => showChat(m.from));
      }
      const body = el("div", "body");
      body.append(el("div", "name", nameOf(m.from)), el("div", "bubble", m.text));
      if (m.buttons && m.buttons.length) body.append(renderButtons(key, m));
      if (m.failed) body.append(el("div", "failed", "未送达"));
      node.append(avatar, body);
    }
    node.dataset.seq = m.seq;
    log.append(node);
    markSpeaker(node, key);
    // Not enumerable, so the saved state stays plain JSON.
    Object.defineProperty(m, "node", { value: node, configurable: true });
    if (key === state.active) log.scrollTop = log.scrollHeight;
  }

  function renderButtons(key, m) {
    const row = el("div", "buttons");
    for (const b of m.buttons) {
      const btn = el("button", "choice", b.title);
      btn.type = "button";
      btn.disabled = !!m.used;
      btn.addEventListener("click", async () => {
        if (m.used) return;
        setUsed(m, row, true);
        // The choice belongs to the resident the bot was asking, whoever is selected in the switcher.
        const sender = key === GROUP ? (resident(m.to) ? m.to : state.speaker) : key;
        const ok = await send(key, sender, b.payload, b.title, "button");
        if (!ok) setUsed(m, row, false); // let them try again
      });
      row.append(btn);
    }
    return row;
  }

  function setUsed(m, row, used) {
    m.used = used;
    row.querySelectorAll("button").forEach((b) => { b.disabled = used; });
    save();
  }

  // The selected speaker's messages sit on the right, as "mine" do in a phone chat app.
  function markSpeaker(node, key) {
    const mine = node.dataset.from && node.dataset.from !== "bot" && (key !== GROUP || node.dataset.from === state.speaker);
    node.classList.toggle("me", !!mine);
  }

  function renderSidebar() {
    const list = $("chat-list");
    list.replaceChildren();
    const item = (key, title, sub) => {
      const a = el("button", "chat-item" + (key === state.active ? " active" : ""));
      a.type = "button";
      a.dataset.chat = key;
      a.append(el("span", "avatar" + (key === GROUP ? " group" : ""), key === GROUP ? "群" : avatarChar(title)));
      const text = el("span", "chat-text");
      text.append(el("span", "chat-name", title), el("span", "chat-sub", sub));
      a.append(text);
      const unread = chat(key).unread;
      if (unread) a.append(el("span", "badge", String(unread)));
      a.addEventListener("click", () => showChat(key));
      list.append(a);
    };
    item(GROUP, GROUP_TITLE, `${state.residents.length}位居民 + 回音`);
    for (const r of state.residents) item(r.id, r.name, "与回音私聊");
  }

  function renderComposer() {
    const select = $("speaker");
    select.replaceChildren(...state.residents.map((r) => {
      const o = el("option", "", r.name);
      o.value = r.id;
      return o;
    }));
    select.value = state.speaker;
    $("mention").checked = state.mention;
    const inGroup = state.active === GROUP;
    $("speaker-row").hidden = !inGroup;
    $("chat-title").textContent = inGroup ? GROUP_TITLE : `${nameOf(state.active)} ↔ 回音`;
    $("chat-sub").textContent = inGroup ? `（${state.residents.length + 1}人）` : "（私聊）";
    $("text").placeholder = inGroup ? `以「${nameOf(state.speaker)}」的身份在群里发言` : `以「${nameOf(state.active)}」的身份私聊回音`;
  }

  function showChat(key) {
    state.active = key;
    chat(key).unread = 0;
    logOf(key);
    document.querySelectorAll(".log").forEach((log) => { log.hidden = log.dataset.chat !== key; });
    const log = logOf(key);
    log.scrollTop = log.scrollHeight;
    renderSidebar();
    renderComposer();
    save();
    if (matchMedia("(pointer: fine)").matches) $("text").focus(); // no surprise keyboard on phones
  }

  // --- talking to the bot -----------------------------------------------------------------------
  function push(key, m) {
    m.seq = ++state.seq;
    chat(key).messages.push(m);
    if (key !== state.active && m.from !== "system") chat(key).unread += 1;
    renderMessage(key, m);
    renderSidebar();
    return m;
  }

  function setPending(delta) {
    pending += delta;
    document.body.dataset.pending = String(pending);
  }

  const STATUS_TEXT = { 400: "请求格式不对", 413: "消息太长了", 422: "消息内容不符合要求", 429: "发得太快了", 503: "回音正忙，请稍后再试" };

  // A Chinese summary for the resident, with the server's own `detail` kept for whoever debugs it.
  function describeError(data, status) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => (d && d.msg) || JSON.stringify(d)).join("；");
    const summary = STATUS_TEXT[status] || (status >= 500 ? "回音服务出错了" : `请求被拒绝（${status}）`);
    return typeof detail === "string" && detail ? `${summary}（${detail}）` : summary;
  }

  // Sends one message as `senderId` in chat `key`; `shown` is what the chat displays (a button's title
  // instead of its payload); `addressed` is true (@-mention), "button" (a button press) or false.
  // Returns whether the bot accepted it.
  async function send(key, senderId, text, shown, addressed) {
    const inGroup = key === GROUP;
    const m = push(key, { from: senderId, text: shown ?? text });
    const body = {
      sender: senderId,
      message: text,
      metadata: {
        chat_id: inGroup ? state.groupId : senderId,
        chat_type: inGroup ? "group" : "private",
        ...(inGroup ? { chat_title: GROUP_TITLE } : {}),
        user_name: nameOf(senderId),
        mentioned: inGroup && addressed === true,
        // A button press answers the bot's own message, as a tap on an inline keyboard does.
        reply_to_bot: inGroup && addressed === "button",
        message_id: uuid(),
      },
    };
    setPending(1);
    try {
      let resp;
      try {
        resp = await fetch(WEBHOOK, {
          method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
        });
      } catch (_) {
        throw new Error("连接不上回音服务，请稍后再试");
      }
      const data = await resp.json().catch(() => null);
      if (!resp.ok) throw new Error(describeError(data, resp.status));
      if (!Array.isArray(data)) throw new Error("回音的答复格式不对");
      if (resp.headers.get("X-Huiyin-Inbox")) startInbox();
      retireChoices(key, senderId);
      deliver(key, senderId, data);
      return true;
    } catch (e) {
      m.failed = true;
      m.node.querySelector(".body")?.append(el("div", "failed", "未送达"));
      push(key, { from: "system", text: `发送失败：${e.message}`, error: true });
      return false;
    } finally {
      setPending(-1);
      save();
    }
  }

  // Once a resident has answered, the choices the bot offered them earlier in that chat are stale.
  function retireChoices(key, senderId) {
    for (const m of chat(key).messages) {
      if (m.from !== "bot" || m.to !== senderId || m.used || !(m.buttons || []).length) continue;
      m.used = true;
      m.node.querySelectorAll("button.choice").forEach((b) => { b.disabled = true; });
    }
  }

  // Places the replies: `target: "private"` goes to the recipient's private chat; `target: "chat"` to the
  // chat named by `chat_id` when the page knows it (a confirmation given privately may be announced in
  // the group), else to the chat the message was sent in.
  function deliver(key, senderId, replies) {
    const notified = new Set();
    for (const reply of replies) {
      if (!reply || (!reply.text && !(reply.buttons || []).length)) continue;
      const to = reply.recipient_id || senderId;
      let dest = key;
      if (reply.target !== "private") {
        if (reply.chat_id === state.groupId) dest = GROUP;
        else if (reply.chat_id && resident(reply.chat_id)) dest = reply.chat_id;
      } else {
        if (!resident(to)) state.residents.push({ id: to, name: to });
        dest = to;
        if (dest !== key && !notified.has(dest)) {
          notified.add(dest);
          push(key, { from: "system", text: `回音私信了${nameOf(dest)}，点此查看`, link: dest });
        }
      }
      const buttons = (reply.buttons || []).filter((b) => b && b.title);
      push(dest, { from: "bot", text: reply.text || "", buttons, to, used: false });
    }
    renderComposer();
  }

  // --- messages the bot sends on its own -------------------------------------------------------
  // Progress of an appeal, a request for a rating: the server keeps them in a mailbox per resident
  // (GET webhooks/rest/inbox). Polled only once the server has said it has mailboxes (a header on the
  // webhook's answers), so the page stays quiet against a server without them.
  let inboxTimer = null;
  function startInbox() {
    if (!state.inbox) { state.inbox = true; save(); }
    if (inboxTimer === null) inboxTimer = setInterval(pollInbox, INBOX_POLL_MS);
  }

  let polling = false;
  async function pollInbox() {
    if (polling || document.hidden) return;
    polling = true;
    try {
      const query = state.residents.map((r) => `sender=${encodeURIComponent(r.id)}`).join("&");
      const resp = await fetch(`webhooks/rest/inbox?${query}`);
      if (!resp.ok) return;
      const replies = await resp.json();
      if (!Array.isArray(replies)) return;
      for (const reply of replies) {
        if (!reply || !reply.recipient_id) continue;
        // Where it belongs: the group, or that resident's private chat.
        const key = reply.target !== "private" && reply.chat_id === state.groupId ? GROUP : reply.recipient_id;
        deliver(key, reply.recipient_id, [reply]);
      }
      if (replies.length) save();
    } catch (_) {
      /* offline for a moment: the mailbox keeps them for the next poll */
    } finally {
      polling = false;
    }
  }

  // --- wiring -----------------------------------------------------------------------------------
  $("composer").addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = $("text");
    const text = input.value.trim();
    if (!text) return;
    const key = state.active;
    const sender = key === GROUP ? state.speaker : key;
    const mentioned = $("mention").checked || text.includes("@" + BOT_NAME);
    input.value = "";
    autoGrow();
    const ok = await send(key, sender, text, text, mentioned);
    // Never lose what was typed: a refused message comes back into the box (unless they typed on).
    if (!ok && !input.value) {
      input.value = text;
      autoGrow();
    }
  });

  $("text").addEventListener("keydown", (e) => {
    // Enter sends; Shift+Enter is a new line; Enter that confirms an IME candidate is neither.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });

  // Fits the box to its text; a taller box shortens the log, so a log that was at its end stays there.
  function autoGrow() {
    const t = $("text");
    const log = logOf(state.active);
    const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 40;
    t.style.height = "auto";
    t.style.height = `${Math.min(t.scrollHeight, 120)}px`;
    if (atEnd) log.scrollTop = log.scrollHeight;
  }
  $("text").addEventListener("input", autoGrow);

  $("speaker").addEventListener("change", (e) => {
    state.speaker = e.target.value;
    document.querySelectorAll(`.log[data-chat="${GROUP}"] .msg`).forEach((n) => markSpeaker(n, GROUP));
    renderComposer();
    save();
  });

  $("mention").addEventListener("change", (e) => { state.mention = e.target.checked; save(); });

  $("add-resident").addEventListener("click", () => {
    const name = (prompt("新居民怎么称呼？（例如：赵大爷、502刘女士）") || "").trim().slice(0, 12);
    if (!name) return;
    const id = `web-r${state.residents.length + 1}-${state.tag}`;
    state.residents.push({ id, name });
    state.speaker = id;
    push(GROUP, { from: "system", text: `${name}加入了群聊` });
    renderComposer();
    save();
  });

  $("reset").addEventListener("click", () => {
    if (!confirm("清空本页的聊天记录，并换一组新的居民身份？")) return;
    try { localStorage.removeItem(STORE_KEY); } catch (_) { /* ignore */ }
    location.reload();
  });

  // Boot: rebuild every chat from the saved state.
  for (const [key, c] of Object.entries(state.chats)) {
    logOf(key);
    for (const m of c.messages) renderMessage(key, m);
  }
  showChat(state.active in state.chats ? state.active : GROUP);
  if (state.inbox) startInbox();
})();
