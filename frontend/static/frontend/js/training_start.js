/* The fine-tune form: when the base model changes, resolution and steps follow that model's
 * defaults (its native resolution, from the json_script the server wrote), unless the
 * researcher has typed a value of their own. */
(function () {
  "use strict";
  const source = document.getElementById("base-model-defaults");
  const model = document.getElementById("id_pretrained");
  if (!source || !model) return;
  const defaults = JSON.parse(source.textContent);
  const fields = ["resolution", "max_train_steps"];
  let current = defaults[model.value] || {};
  model.addEventListener("change", () => {
    const next = defaults[model.value] || {};
    fields.forEach((name) => {
      const input = document.getElementById("id_" + name);
      if (!input || next[name] === undefined) return;
      // Replace a value that is blank or still the previous model's default.
      if (input.value === "" || input.value === String(current[name])) {
        input.value = next[name];
      }
    });
    current = next;
  });
})();
