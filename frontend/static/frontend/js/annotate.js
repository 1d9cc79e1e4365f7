/* The annotate screen: show a task, take the answer by key, mouse, touch or drag, move on.
 *
 * No visible wait: while one task is shown the next is already reserved on the server and
 * its images are in the browser cache. Answers go into a queue kept in localStorage and are
 * sent in the background until the server acknowledges them, so a reload, a flaky network
 * or an expired session loses nothing; the server's submit is idempotent, so resending is
 * safe. Time on task runs from when every image of the task has loaded to the answer.
 */
(function () {
  "use strict";

  const config = JSON.parse(document.getElementById("annotate-config").textContent);
  const t = JSON.parse(document.getElementById("annotate-i18n").textContent);
  const $ = (id) => document.getElementById(id);
  const QUEUE_KEY = "pickwise.queue." + config.userId;
  const RETRY_MIN_MS = 300;
  const RETRY_MAX_MS = 5000;
  const LEASE_MARGIN_MS = 3000;
  const DOUBLE_CLICK_MS = 400;
  // Lease times come from the server's clock; correct for a client clock that is off.
  const clockSkewMs = Date.parse(config.serverNow) - Date.now();

  // Exposed for the browser tests: key-press-to-next-task times and the shown task.
  const metrics = { keyToNext: [], shown: 0 };
  window.pickwise = {
    metrics: metrics,
    queueLength: () => loadQueue().length,
    aheadReady: () => Boolean(ahead) || nothingLeft,
  };

  let current = null; // {task, shownAt, answers, boards, undo}
  let ahead = null; // the reserved next task, images preloaded
  let fetching = null; // the in-flight next request
  let waiting = false; // the annotator answered and no task is ready yet
  let pendingKeyAt = null; // when the key that finished the last task was pressed
  let stopped = false; // blocked, closed or done: nothing more to fetch
  let nothingLeft = false;
  let retryMs = RETRY_MIN_MS;
  let tieNext = false; // ranking: "=" pressed, the next number ties
  let leaseTimer = null;
  let keepFocus = false;
  let lastAnswer = null; // pairwise: the last answer, while it may still be undone
  let lastAnswerTimer = null;
  let undoing = false;
  const dropped = new Map(); // tasks let go because their lease ran out or nearly did

  /* ---------- the answer queue (localStorage) ---------- */

  function loadQueue() {
    try {
      return JSON.parse(localStorage.getItem(QUEUE_KEY) || "[]");
    } catch (error) {
      return [];
    }
  }

  function saveQueue(queue) {
    localStorage.setItem(QUEUE_KEY, JSON.stringify(queue));
    showPending(queue.length);
  }

  function enqueue(item) {
    const queue = loadQueue();
    if (!queue.some((q) => q.id === item.id)) queue.push(item);
    saveQueue(queue);
  }

  function dequeue(id) {
    saveQueue(loadQueue().filter((q) => q.id !== id));
  }

  // Shown only when answers pile up (offline or slow): one answer in flight is the normal case.
  function showPending(count) {
    const el = $("pending");
    const piling = count > 1 || (count === 1 && $("notice").dataset.offline);
    el.hidden = !piling;
    el.textContent = piling ? (count === 1 ? t.pendingOne : t.pendingMany.replace("%(count)s", count)) : "";
  }

  function csrfToken() {
    const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : document.querySelector("meta[name=csrf-token]").content;
  }

  async function post(url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken(), Accept: "application/json" },
      body: JSON.stringify(body || {}),
    });
    let data = null;
    if (response.status !== 204) {
      try {
        data = await response.json();
      } catch (error) {
        data = null;
      }
    }
    return { status: response.status, data: data || {} };
  }

  // Signed out (or the CSRF token went stale with the session): log in again, then come back.
  function sessionLost(response) {
    const code = response.data.code;
    return (
      response.status === 401 ||
      (response.status === 403 &&
        (code === "not_authenticated" || code === "authentication_failed" || /CSRF/i.test(response.data.detail || "")))
    );
  }

  // Any other refusal of the campaign as a whole (a changed role, say): stop and say why.
  function refused(response) {
    stopped = true;
    $("closed-reason").textContent = response.data.detail || "";
    showState("closed");
  }

  function toLogin() {
    // The queue stays in localStorage; the task page flushes it after the login.
    stopped = true;
    window.location.assign(config.loginUrl + "?next=" + encodeURIComponent(config.pageUrl));
  }

  let flushing = null;

  function flush() {
    if (!flushing) {
      flushing = flushLoop().finally(() => {
        flushing = null;
      });
    }
    return flushing;
  }

  async function flushLoop() {
    for (;;) {
      const queue = loadQueue();
      if (!queue.length) return;
      const item = queue[0];
      let response;
      try {
        const url = (item.type === "skip" ? config.skipUrl : config.submitUrl).replace("/0/", "/" + item.id + "/");
        response = await post(url, item.type === "skip" ? {} : { answers: item.answers, duration_ms: item.duration_ms });
      } catch (error) {
        response = { status: 0, data: {} };
      }
      if (response.status === 200 || response.status === 201) {
        dequeue(item.id);
        if (item.type === "submit" && response.status === 200 && firstAnswerStood(item, response.data)) {
          notify(t.firstStands);
        }
        clearOffline();
        document.body.dispatchEvent(new CustomEvent("pickwise:acked", { detail: { id: item.id } }));
        continue;
      }
      if (sessionLost(response)) return toLogin();
      if (response.status === 0 || response.status >= 500 || response.status === 429) {
        showOffline();
        await sleep(backoff());
        continue;
      }
      // Refused for good (expired lease, skipped, blocked, invalid, gone): drop it and say so.
      dequeue(item.id);
      const code = response.data.code;
      if (code === "assignment_expired") notify(t.expired);
      else if (code === "blocked") return showBlocked(response.data.detail);
      else if (code === "invalid_answer") notify(response.data.detail || t.invalid);
      else if (!(item.type === "skip" && response.status === 409)) notify(response.data.detail || t.invalid);
    }
  }

  // A 200 (not 201) means the task already had an answer. The server says whether that
  // first answer differs from the one just sent (answered elsewhere first: another tab or
  // device), or is our own, resent after a lost response; without its word, compare.
  function firstAnswerStood(item, data) {
    if (typeof data.first_answer_stands === "boolean") return data.first_answer_stands;
    return Boolean(data.answers) && canonical(data.answers) !== canonical(item.answers);
  }

  function canonical(answers) {
    const keys = Object.keys(answers).sort();
    return JSON.stringify(
      keys.map((key) => {
        const value = answers[key];
        return [key, Array.isArray(value) ? value.map((tier) => [].concat(tier).sort()) : value];
      })
    );
  }

  function backoff() {
    const wait = retryMs;
    retryMs = Math.min(RETRY_MAX_MS, retryMs * 2);
    return wait;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  function showOffline() {
    const el = $("notice");
    el.textContent = t.offline;
    el.dataset.offline = "1";
    el.hidden = false;
    showPending(loadQueue().length);
  }

  function clearOffline() {
    retryMs = RETRY_MIN_MS;
    const el = $("notice");
    if (el.dataset.offline) {
      delete el.dataset.offline;
      el.textContent = "";
    }
  }

  let noticeTimer = null;
  function notify(text) {
    const el = $("notice");
    delete el.dataset.offline;
    el.textContent = text;
    clearTimeout(noticeTimer);
    noticeTimer = setTimeout(() => {
      if (el.textContent === text) el.textContent = "";
    }, 5000);
  }

  /* ---------- reserving tasks ahead ---------- */

  function heldIds() {
    // A dropped task stays excluded until the server has surely expired it too.
    for (const [id, task] of dropped) if (leaseLeftMs(task) < -5000) dropped.delete(id);
    const ids = loadQueue().map((q) => q.id).concat(Array.from(dropped.keys()));
    if (current) ids.push(current.task.id);
    return ids;
  }

  // Reserve the next task once the queue is empty: the server lets an annotator hold two
  // open tasks, and an unsent answer still holds one.
  async function reserveAhead() {
    if (stopped || ahead || fetching || nothingLeft) return;
    if (loadQueue().length) {
      await flush();
      if (loadQueue().length || stopped) return;
    }
    if (ahead || fetching) return;
    fetching = fetchTask().finally(() => {
      fetching = null;
    });
    const task = await fetching;
    if (!task) return;
    if (waiting) {
      waiting = false;
      await show(task);
      reserveAhead();
    } else if (!ahead && !(current && current.task.id === task.id)) {
      // (An undo may have put a task back in line meanwhile: then this one stays open on
      // the server, and next hands it back later.)
      ahead = task;
    }
  }

  async function fetchTask() {
    for (;;) {
      if (stopped) return null;
      let response;
      try {
        response = await post(config.nextUrl, { exclude: heldIds() });
      } catch (error) {
        response = { status: 0, data: {} };
      }
      if (response.status === 200) {
        clearOffline();
        const task = response.data;
        if (heldIds().includes(task.id)) {
          await sleep(backoff());
          continue;
        }
        await preload(task);
        return task;
      }
      if (response.status === 204) {
        nothingLeft = true;
        if (waiting) showState("done");
        return null;
      }
      if (sessionLost(response)) {
        toLogin();
        return null;
      }
      if (response.data.code === "blocked") {
        showBlocked(response.data.detail);
        return null;
      }
      if (response.data.code === "campaign_not_active" || response.status === 403 || response.status === 404) {
        refused(response);
        return null;
      }
      if (response.data.code === "too_many_open") {
        await flush();
        await sleep(backoff());
        continue;
      }
      showOffline();
      await sleep(backoff());
    }
  }

  function preload(task) {
    return Promise.all(
      task.images.map(
        (image) =>
          new Promise((resolve) => {
            const img = new Image();
            img.onload = img.onerror = () => resolve();
            img.src = image.url;
          })
      )
    );
  }

  function leaseLeftMs(task) {
    return Date.parse(task.expires_at) - (Date.now() + clockSkewMs);
  }

  /* ---------- showing a task ---------- */

  function showState(name) {
    for (const id of ["task", "state-loading", "state-blocked", "state-done", "state-closed"]) {
      $(id).hidden = id !== (name === "task" ? "task" : "state-" + name);
    }
    if (name !== "task" && name !== "loading") {
      stopped = stopped || name !== "loading";
      current = null;
      $("state-" + name).focus();
    }
  }

  function showBlocked(detail) {
    stopped = true;
    if (detail) $("blocked-reason").textContent = detail;
    showState("blocked");
  }

  // On a narrow screen the two images of a pair are stacked, so they are named by
  // position: Top and Bottom rather than Left and Right (captions, buttons, alt texts).
  const stacked = window.matchMedia("(max-width: 640px)");

  function sideLabel(index) {
    if (stacked.matches) return index === 0 ? t.top : t.bottom;
    return index === 0 ? t.left : t.right;
  }

  function imageAlt(index, count) {
    if (config.kind === "pairwise") {
      const name = stacked.matches ? (index === 0 ? t.topImage : t.bottomImage) : index === 0 ? t.leftImage : t.rightImage;
      return name + ": " + t.generatedFor;
    }
    return t.imageN.replace("%(n)s", index + 1).replace("%(k)s", count) + ": " + t.generatedFor;
  }

  function relabel() {
    document.querySelectorAll("#task [data-side]").forEach((label) => {
      label.textContent = sideLabel(Number(label.dataset.side));
    });
    document.querySelectorAll("#images img").forEach((img, index, all) => {
      img.alt = imageAlt(index, all.length);
    });
  }

  // A long prompt is clamped to a few lines; the toggle shows it whole, and only appears
  // when something is actually cut off.
  function expandPrompt(expanded) {
    const prompt = $("prompt");
    const toggle = $("prompt-toggle");
    prompt.classList.toggle("expanded", expanded);
    toggle.textContent = expanded ? t.showLess : t.showAll;
    toggle.setAttribute("aria-expanded", expanded ? "true" : "false");
    toggle.hidden = !expanded && prompt.scrollHeight <= prompt.clientHeight + 1;
  }

  function buildImages(task) {
    const box = document.createElement("div");
    box.className = "images images-" + task.images.length;
    task.images.forEach((image, index) => {
      const figure = document.createElement("figure");
      figure.className = "shot";
      const img = document.createElement("img");
      img.src = image.url;
      img.width = image.width;
      img.height = image.height;
      img.alt = imageAlt(index, task.images.length);
      img.dataset.uid = image.uid;
      img.draggable = false;
      const caption = document.createElement("figcaption");
      if (config.kind === "pairwise") {
        caption.innerHTML = "<kbd></kbd> <span></span>";
        caption.firstChild.textContent = index === 0 ? "1 ←" : "2 →";
        caption.lastChild.dataset.side = index;
        caption.lastChild.textContent = sideLabel(index);
      } else {
        caption.innerHTML = '<span class="shot-number"></span>';
        caption.firstChild.textContent = index + 1;
      }
      figure.append(img, caption);
      box.append(figure);
    });
    return box;
  }

  function choiceButton(task, criterion, value, label, key, side) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "choice";
    button.dataset.criterion = criterion.key;
    button.dataset.value = value;
    button.dataset.task = task.id;
    button.disabled = true; // until the task is painted
    button.setAttribute("aria-pressed", "false");
    button.innerHTML = "<span></span> <kbd></kbd>";
    button.firstChild.textContent = label;
    if (side !== undefined) button.firstChild.dataset.side = side;
    button.lastChild.textContent = key;
    return button;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // One fieldset per question, the first one active; `fill` adds the answer controls.
  function buildCriteria(task, fill) {
    const box = el("div");
    task.criteria.forEach((criterion, index) => {
      const fieldset = el("fieldset", "criterion");
      fieldset.dataset.key = criterion.key;
      fieldset.append(el("legend", "", criterion.question));
      fill(fieldset, criterion);
      if (index === 0) fieldset.classList.add("active");
      box.append(fieldset);
    });
    return box;
  }

  function pairwiseChoices(task) {
    return (fieldset, criterion) => {
      const row = el("div", "choices");
      row.append(choiceButton(task, criterion, task.images[0].uid, sideLabel(0), "1 ←", 0));
      if (criterion.allow_tie) row.append(choiceButton(task, criterion, "tie", t.tie, "3 ↓"));
      if (criterion.allow_both_bad) row.append(choiceButton(task, criterion, "both_bad", t.bothBad, "B"));
      row.append(choiceButton(task, criterion, task.images[1].uid, sideLabel(1), "2 →", 1));
      fieldset.append(row);
    };
  }

  // A ranked list (best first) and a pool of images not placed yet; renderBoards fills them.
  function rankingBoard(fieldset) {
    fieldset.classList.add("board");
    const ranked = el("ol", "ranked");
    ranked.setAttribute("aria-label", t.rankedLabel);
    const pool = el("ul", "pool");
    pool.setAttribute("aria-label", t.poolLabel);
    fieldset.append(el("p", "board-label", t.rankedLabel), ranked, el("p", "board-label", t.poolLabel), pool);
  }

  function waitForImages(container) {
    const imgs = Array.from(container.querySelectorAll("img"));
    return Promise.all(
      imgs.map((img) =>
        img.complete
          ? Promise.resolve()
          : new Promise((resolve) => {
              img.addEventListener("load", resolve, { once: true });
              img.addEventListener("error", resolve, { once: true });
            })
      )
    );
  }

  async function show(task) {
    if (leaseLeftMs(task) < LEASE_MARGIN_MS) {
      // Held too long in the background: let it lapse and ask for a fresh one instead.
      dropped.set(task.id, task);
      current = null;
      return nextOrWait();
    }
    // Keyboard focus on a control of the old task would be lost with it: keep it in the task.
    const refocus = keepFocus || $("task").contains(document.activeElement);
    keepFocus = false;
    const images = buildImages(task);
    const criteria = buildCriteria(task, config.kind === "pairwise" ? pairwiseChoices(task) : rankingBoard);
    $("prompt").textContent = task.prompt.text;
    $("images").replaceWith(images);
    images.id = "images";
    $("criteria").replaceWith(criteria);
    criteria.id = "criteria";
    current = { task: task, shownAt: null, answers: {}, boards: {}, undo: [] };
    tieNext = false;
    updateUndoButton();
    setInputEnabled(false);
    if (config.kind === "ranking") {
      task.criteria.forEach((c) => (current.boards[c.key] = []));
      renderBoards();
    }
    updateSubmit();
    $("task").dataset.taskId = task.id;
    $("task").dataset.ready = "0";
    showState("task");
    // Each task starts at the top of the page, where its prompt is.
    window.scrollTo(0, 0);
    expandPrompt(false);
    await waitForImages(images);
    if (!current || current.task.id !== task.id) return;
    requestAnimationFrame(() => {
      if (!current || current.task.id !== task.id) return;
      const now = performance.now();
      current.shownAt = now;
      setInputEnabled(true);
      const keyAt = pendingKeyAt;
      pendingKeyAt = null;
      // A task queued from the frame callback runs once that frame is painted.
      if (keyAt !== null) setTimeout(() => metrics.keyToNext.push(performance.now() - keyAt), 0);
      metrics.shown += 1;
      $("task").dataset.ready = "1";
    });
    if (refocus) $("task").focus({ preventScroll: true });
    clearTimeout(leaseTimer);
    leaseTimer = setTimeout(() => {
      if (current && current.task.id === task.id) {
        // The lease ran out while the task was on screen: the server has given it back.
        notify(t.expired);
        dropped.set(task.id, task);
        current = null;
        nextOrWait();
      }
    }, Math.max(0, leaseLeftMs(task) - 1000));
  }

  // An answer belongs to the task that was on screen when it was given: between an answer
  // and the next task's paint (images loaded, frame drawn) every input is ignored, so a
  // double click or a held key cannot answer a task nobody has seen.
  function painted() {
    return Boolean(current) && current.shownAt !== null;
  }

  function setInputEnabled(enabled) {
    $("task").classList.toggle("settling", !enabled);
    document.querySelectorAll("#criteria .choice, #skip, #undo").forEach((button) => {
      button.disabled = !enabled;
    });
    if (enabled) updateSubmit();
    else $("submit").disabled = true;
  }

  /* ---------- tasks answered elsewhere ---------- */

  // Another tab of this browser answered or skipped a task: its queue (shared through
  // localStorage) now holds it. If it is on screen here, or reserved as the next one, let
  // it go, so an answered task is never shown as open.
  function onQueueChanged(event) {
    if (event.key !== QUEUE_KEY || stopped) return;
    const taken = new Set(loadQueue().map((q) => q.id));
    showPending(taken.size);
    if (ahead && taken.has(ahead.id)) ahead = null;
    if (current && taken.has(current.task.id)) leaveCurrent(t.answeredElsewhere);
  }

  function leaveCurrent(message) {
    notify(message);
    clearTimeout(leaseTimer);
    setInputEnabled(false);
    current = null;
    nextOrWait();
  }

  // After the page comes back (history navigation restores it from the back-forward cache,
  // or a hidden tab is shown again), ask the server whether the task on screen is still
  // open: `next`, told to leave out the reserved one, hands back the open task on screen,
  // or another when that one was answered, skipped or lapsed meanwhile.
  let revalidating = false;

  async function revalidate() {
    if (!current || stopped || revalidating) return;
    revalidating = true;
    try {
      await flush();
      if (!current) return;
      const id = current.task.id;
      const exclude = heldIds().filter((held) => held !== id);
      if (ahead) exclude.push(ahead.id);
      let response;
      try {
        response = await post(config.nextUrl, { exclude: exclude });
      } catch (error) {
        return;
      }
      if (!current || current.task.id !== id) return; // moved on meanwhile
      if (response.status === 200 && response.data.id === id) return; // still open
      if (response.status === 200) {
        await preload(response.data);
        if (!current || current.task.id !== id) return;
        if (!ahead) ahead = response.data;
      } else if (response.status === 204) {
        nothingLeft = !ahead;
      } else {
        return; // refusals and errors are met by the next ordinary request
      }
      dropped.set(id, current.task);
      leaveCurrent(t.answeredElsewhere);
    } finally {
      revalidating = false;
    }
  }

  // The current task is done (answered or skipped): show the next one at once if it is ready.
  function advance(keyAt) {
    clearTimeout(leaseTimer);
    // Remembered now: while the next task loads, the old controls are hidden and lose focus.
    keepFocus = $("task").contains(document.activeElement);
    setInputEnabled(false);
    pendingKeyAt = keyAt;
    current = null;
    nextOrWait();
    flush().then(() => reserveAhead());
  }

  function nextOrWait() {
    if (ahead) {
      const task = ahead;
      ahead = null;
      show(task).then(() => reserveAhead());
    } else if (nothingLeft) {
      flush().then(() => showState("done"));
    } else {
      waiting = true;
      showState("loading");
      reserveAhead();
    }
  }

  function durationMs() {
    return current.shownAt === null ? null : Math.max(0, Math.round(performance.now() - current.shownAt));
  }

  function submit(keyAt) {
    if (!painted() || !complete()) return;
    const answers = {};
    for (const criterion of current.task.criteria) {
      answers[criterion.key] = config.kind === "pairwise" ? current.answers[criterion.key] : tiers(criterion.key);
    }
    enqueue({ type: "submit", id: current.task.id, answers: answers, duration_ms: durationMs() });
    if (config.kind === "pairwise") rememberAnswer(current.task);
    advance(keyAt);
  }

  function skip(keyAt) {
    if (!painted()) return;
    forgetAnswer();
    enqueue({ type: "skip", id: current.task.id });
    advance(keyAt);
  }

  /* ---------- pairwise answers ---------- */

  function activeCriterion() {
    const active = document.querySelector("#criteria .criterion.active");
    return active ? active.dataset.key : current.task.criteria[0].key;
  }

  function setActive(key) {
    document.querySelectorAll("#criteria .criterion").forEach((el) => el.classList.toggle("active", el.dataset.key === key));
  }

  function choose(key, value, keyAt) {
    if (!painted()) return;
    const criterion = current.task.criteria.find((c) => c.key === key);
    if (!criterion) return;
    if ((value === "tie" && !criterion.allow_tie) || (value === "both_bad" && !criterion.allow_both_bad)) return;
    current.answers[key] = value;
    document.querySelectorAll('#criteria .choice[data-criterion="' + key + '"]').forEach((button) => {
      button.setAttribute("aria-pressed", button.dataset.value === value ? "true" : "false");
    });
    if (current.task.criteria.length === 1) return submit(keyAt);
    const open = current.task.criteria.find((c) => !(c.key in current.answers));
    if (open) setActive(open.key);
    updateSubmit();
  }

  /* ---------- undoing a pairwise answer ---------- */

  // For a few seconds after an answer (the server's window, less a margin for the round
  // trip), U, Backspace or the Undo button take it back and show its task again.
  function rememberAnswer(task) {
    forgetAnswer();
    lastAnswer = { task: task };
    lastAnswerTimer = setTimeout(forgetAnswer, Math.max(0, config.undoSeconds * 1000 - 1000));
  }

  function forgetAnswer() {
    clearTimeout(lastAnswerTimer);
    lastAnswer = null;
    if (config.kind === "pairwise") $("undo").hidden = true;
  }

  function updateUndoButton() {
    $("undo").hidden = config.kind === "pairwise" ? !lastAnswer : !(current && current.undo.length);
  }

  async function undoAnswer() {
    const last = lastAnswer;
    if (!last || !painted() || undoing) return;
    undoing = true;
    forgetAnswer();
    setInputEnabled(false);
    try {
      // Not sent yet: it never leaves. Being sent right now: let that finish first.
      const queued = loadQueue().some((q) => q.id === last.task.id);
      if (queued) dequeue(last.task.id);
      if (flushing) await Promise.race([flushing, sleep(2000)]);
      let response;
      try {
        response = await post(config.undoUrl.replace("/0/", "/" + last.task.id + "/"), {});
      } catch (error) {
        response = { status: 0, data: {} };
      }
      let task = null;
      if (response.status === 200) task = response.data;
      else if (response.data.code === "assignment_open" || (queued && response.status === 0)) task = last.task;
      else if (sessionLost(response)) return toLogin();
      if (!task) {
        notify(response.data.detail || t.undoFailed);
        if (painted()) setInputEnabled(true);
        return;
      }
      // The task on screen becomes the next one again; the undone one is shown afresh.
      if (current) ahead = current.task;
      clearTimeout(leaseTimer);
      current = null;
      notify(t.undone);
      await show(task);
    } finally {
      undoing = false;
    }
  }

  function undoPressed() {
    if (config.kind === "pairwise") undoAnswer();
    else undo();
  }

  /* ---------- ranking answers ---------- */

  function tiers(key) {
    const out = [];
    for (const entry of current.boards[key]) {
      if (entry.tie && out.length) out[out.length - 1].push(entry.uid);
      else out.push([entry.uid]);
    }
    return out;
  }

  function snapshot() {
    current.undo.push(JSON.stringify(current.boards));
    $("undo").hidden = false;
  }

  function undo() {
    if (!current || !current.undo.length) return;
    current.boards = JSON.parse(current.undo.pop());
    $("undo").hidden = current.undo.length === 0;
    renderBoards();
  }

  function place(key, uid, tie) {
    if (!painted()) return;
    const board = current.boards[key];
    if (!board || board.some((e) => e.uid === uid)) return;
    const criterion = current.task.criteria.find((c) => c.key === key);
    snapshot();
    board.push({ uid: uid, tie: Boolean(tie && criterion.allow_tie && board.length) });
    renderBoards();
    if (board.length === current.task.images.length) {
      const open = current.task.criteria.find((c) => current.boards[c.key].length < current.task.images.length);
      if (open) setActive(open.key);
    }
  }

  function unplace(key, uid) {
    snapshot();
    const board = current.boards[key];
    const index = board.findIndex((e) => e.uid === uid);
    board.splice(index, 1);
    if (index === 0 && board.length) board[0].tie = false;
    renderBoards();
  }

  function toggleTie(key, uid) {
    const board = current.boards[key];
    const index = board.findIndex((e) => e.uid === uid);
    if (index <= 0) return;
    snapshot();
    board[index].tie = !board[index].tie;
    renderBoards();
  }

  function chip(task, uid, tag) {
    const index = task.images.findIndex((i) => i.uid === uid);
    const li = document.createElement("li");
    li.className = "chip";
    li.dataset.uid = uid;
    const body = document.createElement(tag);
    body.className = "chip-body";
    const thumb = document.createElement("img");
    thumb.src = task.images[index].url;
    thumb.alt = "";
    thumb.draggable = false;
    const number = document.createElement("span");
    number.className = "chip-number";
    number.textContent = index + 1;
    body.append(thumb, number);
    li.append(body);
    return { li: li, body: body, number: index + 1 };
  }

  // Re-rendering replaces the chips; keep keyboard focus on the same control, or close by.
  function focusMark() {
    const el = document.activeElement;
    if (!el || !el.closest("#criteria")) return null;
    const li = el.closest(".chip");
    const board = el.closest(".board");
    return { uid: li && li.dataset.uid, className: el.className, board: board && board.dataset.key };
  }

  function focusRestore(mark) {
    if (!mark) return;
    const board = document.querySelector('#criteria .board[data-key="' + mark.board + '"]');
    const same = mark.uid && board && board.querySelector('.chip[data-uid="' + mark.uid + '"] [class="' + mark.className + '"]');
    const next = same || (board && board.querySelector(".pool button")) || $("submit");
    if (next && !next.disabled) next.focus();
    else $("task").focus();
  }

  function renderBoards() {
    const mark = focusMark();
    renderBoardLists();
    focusRestore(mark);
  }

  function renderBoardLists() {
    const task = current.task;
    for (const criterion of task.criteria) {
      const fieldset = document.querySelector('#criteria .board[data-key="' + criterion.key + '"]');
      const ranked = fieldset.querySelector(".ranked");
      const pool = fieldset.querySelector(".pool");
      ranked.replaceChildren();
      pool.replaceChildren();
      const board = current.boards[criterion.key];
      let rank = 0;
      board.forEach((entry, position) => {
        const { li, body, number } = chip(task, entry.uid, "span");
        if (!(entry.tie && position > 0)) rank += 1;
        body.setAttribute("aria-label", t.rankN.replace("%(rank)s", rank).replace("%(n)s", number));
        li.classList.toggle("tied", entry.tie && position > 0);
        const badge = document.createElement("span");
        badge.className = "chip-rank";
        badge.textContent = "#" + rank;
        li.prepend(badge);
        if (criterion.allow_tie && position > 0) {
          const tie = document.createElement("button");
          tie.type = "button";
          tie.className = "chip-action tie-toggle";
          tie.setAttribute("aria-pressed", entry.tie ? "true" : "false");
          tie.textContent = "=";
          tie.title = t.tieAbove;
          tie.setAttribute("aria-label", t.tieAbove + " (" + t.imageShort.replace("%(n)s", number) + ")");
          tie.addEventListener("click", () => toggleTie(criterion.key, entry.uid));
          li.append(tie);
        }
        const remove = document.createElement("button");
        remove.type = "button";
        remove.className = "chip-action";
        remove.textContent = "↩";
        remove.title = t.unplace;
        remove.setAttribute("aria-label", t.unplace + " (" + t.imageShort.replace("%(n)s", number) + ")");
        remove.addEventListener("click", () => unplace(criterion.key, entry.uid));
        li.append(remove);
        ranked.append(li);
      });
      task.images.forEach((image) => {
        if (board.some((e) => e.uid === image.uid)) return;
        const { li, body, number } = chip(task, image.uid, "button");
        body.type = "button";
        body.setAttribute("aria-label", t.placeNext.replace("%(n)s", number));
        body.addEventListener("click", () => place(criterion.key, image.uid, false));
        pool.append(li);
      });
      attachSortable(criterion.key, ranked, pool);
    }
    updateSubmit();
  }

  function attachSortable(key, ranked, pool) {
    if (!window.Sortable) return;
    for (const list of [ranked, pool]) {
      if (list._sortable) continue;
      list._sortable = window.Sortable.create(list, {
        group: "board-" + key,
        animation: 120,
        // Mouse-event dragging behaves the same with a mouse, a finger and test drivers.
        forceFallback: true,
        fallbackTolerance: 4,
        filter: ".chip-action",
        preventOnFilter: false,
        onStart: () => snapshot(),
        onEnd: () => readBoard(key, ranked),
      });
    }
  }

  // After a drag, the ranked list's order in the page is the new ranking.
  function readBoard(key, ranked) {
    const old = current.boards[key];
    const ties = Object.fromEntries(old.map((e) => [e.uid, e.tie]));
    const uids = Array.from(ranked.querySelectorAll(".chip")).map((li) => li.dataset.uid);
    current.boards[key] = uids.map((uid, position) => ({ uid: uid, tie: position > 0 && Boolean(ties[uid]) }));
    if (JSON.stringify(old) === JSON.stringify(current.boards[key])) current.undo.pop();
    $("undo").hidden = current.undo.length === 0;
    renderBoards();
  }

  function complete() {
    if (!current) return false;
    if (config.kind === "pairwise") return current.task.criteria.every((c) => c.key in current.answers);
    const k = current.task.images.length;
    return current.task.criteria.every((c) => current.boards[c.key].length === k && tiers(c.key).length > 1);
  }

  function updateSubmit() {
    $("submit").disabled = !painted() || !complete();
    // A single pairwise question is answered and sent by one key or tap: no submit button.
    $("submit").hidden = config.kind === "pairwise" && current.task.criteria.length === 1;
  }

  /* ---------- zoom and help ---------- */

  function zoom(open) {
    const box = $("zoom");
    if (open === undefined) open = box.hidden;
    if (open && current) {
      const images = $("zoom-images");
      images.replaceChildren(...Array.from($("images").querySelectorAll("img")).map((img) => img.cloneNode()));
    }
    box.hidden = !open;
  }

  function help() {
    const dialog = $("help");
    if (dialog.open) dialog.close();
    else dialog.showModal();
  }

  /* ---------- input ---------- */

  const PAIRWISE_KEYS = { ArrowLeft: 0, Digit1: 0, Numpad1: 0, ArrowRight: 1, Digit2: 1, Numpad2: 1 };

  function onKeyDown(event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if ($("help").open) return;
    const target = event.target;
    const typing = target.closest && target.closest("input, textarea, select, summary");
    if (typing) return;
    const keyAt = event.timeStamp || performance.now(); // when the key went down
    if (event.key === "?") {
      event.preventDefault();
      return help();
    }
    if (event.key === "Escape" && !$("zoom").hidden) return zoom(false);
    if (!current) return;
    if (event.code === "Space" || event.key === " ") {
      if (target.closest && target.closest("button, a")) return; // Space presses a focused button
      event.preventDefault();
      if (!event.repeat) zoom(true);
      return;
    }
    const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
    if (key === "z") return zoom();
    // Answering keys: not before the task is painted, and a held key answers once.
    if (!painted() || event.repeat) {
      if (event.code in PAIRWISE_KEYS) event.preventDefault();
      return;
    }
    if (key === "s") {
      event.preventDefault();
      return skip(keyAt);
    }
    if (key === "Enter") {
      if (target.closest && target.closest("button, a")) return; // Enter presses a focused button
      event.preventDefault();
      return submit(keyAt);
    }
    if (config.kind === "pairwise") {
      const criterion = current.task.criteria.find((c) => c.key === activeCriterion());
      if (event.code in PAIRWISE_KEYS) {
        event.preventDefault();
        return choose(criterion.key, current.task.images[PAIRWISE_KEYS[event.code]].uid, keyAt);
      }
      if (event.code === "ArrowDown" || event.code === "Digit3" || event.code === "Numpad3") {
        event.preventDefault();
        return choose(criterion.key, "tie", keyAt);
      }
      if (key === "b") {
        event.preventDefault();
        return choose(criterion.key, "both_bad", keyAt);
      }
      if (key === "u" || key === "Backspace") {
        event.preventDefault();
        return undoAnswer();
      }
      return;
    }
    if (key === "u" || key === "Backspace") {
      event.preventDefault();
      return undo();
    }
    if (key === "=" || key === "t") {
      event.preventDefault();
      tieNext = !tieNext;
      return notify(tieNext ? t.tieArmed : "");
    }
    const digit = /^(Digit|Numpad)([1-9])$/.exec(event.code);
    if (digit) {
      const index = Number(digit[2]) - 1;
      if (index >= current.task.images.length) return;
      event.preventDefault();
      const tie = tieNext || event.shiftKey;
      if (tieNext) notify("");
      tieNext = false;
      place(activeCriterion(), current.task.images[index].uid, tie);
    }
  }

  function onKeyUp(event) {
    if ((event.code === "Space" || event.key === " ") && !$("zoom").hidden) zoom(false);
  }

  function onClick(event) {
    const button = event.target.closest("#criteria .choice");
    // The second click of a double click never answers: it would land on the next task,
    // painted a moment before. (A later click that the browser still counts as a double
    // one is a deliberate answer to the task in view.)
    const doubled = event.detail > 1 && painted() && performance.now() - current.shownAt < DOUBLE_CLICK_MS;
    if (button && painted() && !doubled && button.dataset.task === String(current.task.id)) {
      setActive(button.dataset.criterion);
      choose(button.dataset.criterion, button.dataset.value, event.timeStamp || performance.now());
    }
    const fieldset = event.target.closest("#criteria .board");
    if (fieldset && current) setActive(fieldset.dataset.key);
  }

  document.addEventListener("keydown", onKeyDown);
  document.addEventListener("keyup", onKeyUp);
  document.addEventListener("click", onClick);
  $("answers").addEventListener("submit", (event) => {
    event.preventDefault();
    submit(performance.now());
  });
  $("skip").addEventListener("click", () => skip(performance.now()));
  $("undo").addEventListener("click", undoPressed);
  $("zoom-button").addEventListener("click", () => zoom());
  $("zoom").addEventListener("click", () => zoom(false));
  $("help-button").addEventListener("click", help);
  $("prompt-toggle").addEventListener("click", () => expandPrompt(!$("prompt").classList.contains("expanded")));
  stacked.addEventListener("change", relabel);
  window.addEventListener("resize", () => {
    if (current && !$("prompt").classList.contains("expanded")) expandPrompt(false);
  });
  window.addEventListener("online", () => flush().then(() => reserveAhead()));
  window.addEventListener("storage", onQueueChanged);
  window.addEventListener("pageshow", (event) => {
    if (event.persisted) revalidate();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible") revalidate();
  });

  /* ---------- start ---------- */

  showPending(loadQueue().length);
  // The page reserves nothing (a GET changes no state): the first task comes from POST next,
  // after any answers still queued from an earlier visit are sent.
  if (config.state === "loading" || loadQueue().length) {
    waiting = true;
    showState("loading");
    reserveAhead();
  }
})();
