// Inventory: the header checkbox selects every row of the page (for "Enable JIT" or "Request access"), and the
// action bar says how many VMs are selected: a selection is of this page only (another page starts afresh).
const rowBoxes = () => document.querySelectorAll('#result_list input[name="vm"]:not(:disabled)');

function showSelection() {
  const count = document.getElementById("selected-count");
  const all = document.querySelector("#result_list .select-all");
  const boxes = [...rowBoxes()];
  const chosen = boxes.filter((box) => box.checked).length;
  if (all) {
    all.checked = boxes.length > 0 && chosen === boxes.length;
    all.indeterminate = chosen > 0 && chosen < boxes.length;
  }
  if (!count) return;
  const vms = (n) => `${n} VM${n === 1 ? "" : "s"}`;
  count.textContent = chosen ? `${vms(chosen)} of ${boxes.length} on this page selected (a selection is of this page only).` : "No VM selected.";
}

document.addEventListener("change", (event) => {
  if (event.target.classList.contains("select-all")) {
    for (const box of rowBoxes()) box.checked = event.target.checked;
  } else if (event.target.name !== "vm") {
    return;
  }
  showSelection();
});
document.addEventListener("DOMContentLoaded", showSelection);
document.addEventListener("htmx:afterSettle", showSelection);  // rows reloaded when a policy change ended
