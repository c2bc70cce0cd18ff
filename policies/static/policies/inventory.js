// Inventory: the header checkbox selects every row of the page (for "Enable JIT" or "Request access"), and the
// action bar says how many VMs are selected. Once every row of the page is ticked and the tab has more VMs than the
// page shows, "Select all N VMs that match" selects every VM the filter matches instead: the form then sends the
// filter (hidden fields of #select-across), not the ids, and the page it opens evaluates the filter again.
const rowBoxes = () => document.querySelectorAll('#result_list input[name="vm"]:not(:disabled)');
let across = false;  // "all VMs that match" chosen

function setAcross(on) {
  const block = document.getElementById("select-across");
  across = Boolean(on && block && block.querySelector("#select-across-all"));
  for (const input of block ? block.querySelectorAll('input[type="hidden"]') : []) input.disabled = !across;
}

function showSelection() {
  const count = document.getElementById("selected-count");
  const all = document.querySelector("#result_list .select-all");
  const block = document.getElementById("select-across");
  const offer = document.getElementById("select-across-all");
  const clear = document.getElementById("select-across-clear");
  const boxes = [...rowBoxes()];
  const chosen = boxes.filter((box) => box.checked).length;
  const whole = boxes.length > 0 && chosen === boxes.length;
  if (across && !whole) setAcross(false);  // a row unticked: back to the rows ticked
  if (all) {
    all.checked = whole;
    all.indeterminate = chosen > 0 && chosen < boxes.length;
  }
  if (block) block.hidden = !(whole && offer);
  if (offer) offer.hidden = across;
  if (clear) clear.hidden = !across;
  if (!count) return;
  const vms = (n) => `${n} VM${n === 1 ? "" : "s"}`;
  if (across) {
    count.textContent = `All ${offer.dataset.count} VMs that match the filter are selected, not only the ${boxes.length} on this page.`;
  } else {
    count.textContent = chosen ? `${vms(chosen)} of ${boxes.length} on this page selected (a selection is of this page only).` : "No VM selected.";
  }
}

document.addEventListener("change", (event) => {
  if (event.target.classList.contains("select-all")) {
    for (const box of rowBoxes()) box.checked = event.target.checked;
  } else if (event.target.name !== "vm") {
    return;
  }
  showSelection();
});
document.addEventListener("click", (event) => {
  if (event.target.id === "select-across-all") {
    setAcross(true);
    showSelection();
    document.getElementById("select-across-clear")?.focus();  // the offer is hidden now: focus stays in the bar
  } else if (event.target.id === "select-across-clear") {
    setAcross(false);
    for (const box of rowBoxes()) box.checked = false;
    showSelection();
    document.querySelector("#result_list .select-all")?.focus();
  }
});
// "All that match" sends the filter only: the page's ticked ids stay out of the URL.
document.addEventListener("formdata", (event) => {
  if (across && event.target.contains(document.getElementById("select-across"))) event.formData.delete("vm");
});
document.addEventListener("DOMContentLoaded", () => { setAcross(false); showSelection(); });
document.addEventListener("htmx:afterSettle", () => { setAcross(false); showSelection(); });  // rows reloaded
// Row menus ("…", <details class="row-menu">): Escape closes the open menu the focus is in and gives focus back to its
// "…", as a menu button does; with the focus elsewhere, it closes any menu left open.
document.addEventListener("keydown", (event) => {
  if (event.key !== "Escape" || event.defaultPrevented) return;
  const inside = event.target instanceof Element ? event.target.closest("details.row-menu[open]") : null;
  const open = inside ? [inside] : [...document.querySelectorAll("details.row-menu[open]")];
  if (!open.length) return;
  for (const menu of open) menu.open = false;
  inside?.querySelector("summary")?.focus();
  event.preventDefault();
});
