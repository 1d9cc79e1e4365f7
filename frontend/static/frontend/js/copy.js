/* Copy buttons: <button data-copy="ID"> copies the text of the element with that id.
 * Delegated from the document, so buttons in lists that htmx replaces work too. */
(function () {
  "use strict";
  function done(button, text) {
    const before = button.dataset.label || button.textContent;
    button.dataset.label = before;
    button.textContent = text;
    setTimeout(() => { button.textContent = before; }, 1500);
  }
  document.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.getElementById(button.dataset.copy);
    if (!source) return;
    const text = source.textContent.trim();
    try {
      await navigator.clipboard.writeText(text);
      done(button, "Copied");
    } catch (error) {
      // No clipboard access (plain http, permissions): select it for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents(source);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      done(button, "Selected: press Ctrl+C");
    }
    document.body.dataset.copied = text; // what was copied, for the browser tests
  });
})();
