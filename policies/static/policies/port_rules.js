// JIT ports form: "Add another port" appends a fresh row from the formset's empty form (Django's __prefix__), and
// the service of a well-known port (SSH, RDP, WinRM; the table's data-port-services) shows under it as it is typed.
(() => {
  const table = document.getElementById("port-rules");
  const services = JSON.parse(table?.dataset.portServices || "{}");
  table?.addEventListener("input", (event) => {
    const input = event.target;
    if (!(input instanceof HTMLInputElement) || !input.name.endsWith("-number")) return;
    const label = document.getElementById(`${input.id}_service`);
    const value = input.value.trim();
    if (label) label.textContent = /^[0-9]{1,5}$/.test(value) ? services[String(Number(value))] || "" : "";
  });

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
