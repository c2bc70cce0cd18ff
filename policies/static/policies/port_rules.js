// JIT ports form: "Add another port" appends a fresh row from the formset's empty form (Django's __prefix__).
(() => {
  const button = document.getElementById("add-port");
  const template = document.getElementById("port-row-template");
  const total = document.querySelector('input[name$="-TOTAL_FORMS"]');
  const max = document.querySelector('input[name$="-MAX_NUM_FORMS"]');
  if (!button || !template || !total) return;
  button.hidden = false;
  button.addEventListener("click", () => {
    const index = Number(total.value);
    if (max && index >= Number(max.value)) return;
    const html = template.innerHTML.replaceAll("__prefix__", String(index));
    const body = document.querySelector("#port-rules tbody");
    body.insertAdjacentHTML("beforeend", html);
    total.value = String(index + 1);
    body.lastElementChild.querySelector("input")?.focus();
  });
})();
